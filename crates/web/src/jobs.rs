//! `/api/v1/jobs`: create, list, read, change (JSON merge patch), delete, run now, pause, resume.
//!
//! Every change is validated as a whole before anything is written, and notifies the scheduler.
//! Editing a job never fires it: `next_run_at` is recomputed from now when the schedule or the
//! paused flag changes, and kept otherwise.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, SubsecRound, Utc};
use cronhook_core::validate::validate_job;
use cronhook_core::{CompiledSchedule, Job, JobSpec, Trigger, ids, secrets};
use serde_json::Value;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::executions::start_execution;
use crate::extract::{IdPath, JsonBody, Params, from_json, list_body, page_request};
use crate::render::{self, JOB_READ_ONLY_FIELDS};
use crate::schemas::{self, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job, patch_job, delete_job))
        .routes(routes!(run_job))
        .routes(routes!(pause_job))
        .routes(routes!(resume_job))
}

/// Now, at the millisecond precision the store keeps.
pub(crate) fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The job `id` in the caller's workspace, or 404.
pub(crate) async fn load_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let not_found = || ApiError::not_found(format!("no job `{id}` in this workspace"));
    if !ids::has_prefix(id, ids::JOB) {
        return Err(not_found());
    }
    state
        .store
        .job(&caller.workspace_id, id)
        .await?
        .ok_or_else(not_found)
}

/// Removes the read-only fields a client may have copied from a job it read.
fn strip_read_only(body: &mut Value) -> Result<(), ApiError> {
    let Value::Object(fields) = body else {
        return Err(ApiError::invalid(
            "",
            "the request body must be a JSON object",
        ));
    };
    for field in JOB_READ_ONLY_FIELDS {
        fields.remove(field);
    }
    Ok(())
}

/// Refuses a one-off schedule whose instant is not in the future.
fn require_future(schedule: &CompiledSchedule, now: DateTime<Utc>) -> Result<(), ApiError> {
    if schedule.is_one_off() && schedule.next_after(now).is_none() {
        return Err(ApiError::invalid(
            "schedule.at",
            "must be in the future (a one-off time that has passed would never fire)",
        ));
    }
    Ok(())
}

fn compile_stored(job: &Job) -> Result<CompiledSchedule, ApiError> {
    CompiledSchedule::compile(&job.spec.schedule, &job.id, job.created_at).map_err(|error| {
        ApiError::internal(format!(
            "stored job {} has an invalid schedule: {}: {}",
            job.id, error.field, error.message
        ))
    })
}

/// Create a job
///
/// Fields with defaults may be left out. Read-only fields copied from a job read (`id`,
/// `next_run_at`, `created_at`, `updated_at`, `schedule_description`) are ignored.
#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    tag = "jobs",
    security(("api_key" = [])),
    request_body(content = JobSpec, description = "The job's writable fields"),
    responses(
        (status = 201, description = "The job, created", body = schemas::Job),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON (`Content-Type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another job of this workspace has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused; `field` names it and `detail` says why", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let job = create_job_from_body(&state, &caller.workspace_id, body).await?;
    Ok((StatusCode::CREATED, Json(render::job(&job))))
}

/// Creates a job in `workspace_id` from a body in the API's JSON form (the REST API's and the
/// dashboard form's one path): read-only fields ignored, validated as a whole, stored, the
/// scheduler told.
pub(crate) async fn create_job_from_body(
    state: &AppState,
    workspace_id: &str,
    mut body: Value,
) -> Result<Job, ApiError> {
    strip_read_only(&mut body)?;
    restore_masked_headers(&mut body, &BTreeMap::new())?;
    let spec: JobSpec = from_json(body)?;
    let id = ids::new_id(ids::JOB);
    let now = now_ms();
    let schedule = validate_job(&spec, &id, now, &state.targets)?;
    require_future(&schedule, now)?;
    crate::channels::check_channel_ids(
        state,
        workspace_id,
        &spec.alerts.channels,
        "alerts.channels",
    )
    .await?;
    let next_run_at = if spec.paused {
        None
    } else {
        schedule.next_after(now)
    };
    let job = Job {
        id,
        workspace_id: workspace_id.to_owned(),
        spec: spec.into(),
        next_run_at,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_job(&job).await?;
    notify(state);
    Ok(job)
}

/// List jobs
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::PageQuery),
    responses(
        (status = 200, description = "A page of jobs", body = schemas::JobList),
        (status = 400, description = "`limit` or `cursor` is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let page = page_request(&params)?;
    let jobs = state.store.list_jobs(&caller.workspace_id, &page).await?;
    let data = jobs.items.iter().map(render::job).collect();
    Ok(Json(list_body(data, jobs.next_after.as_deref())))
}

/// Read a job
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::JobId),
    responses(
        (status = 200, description = "The job", body = schemas::Job),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let job = load_job(&state, &caller, &id).await?;
    Ok(Json(render::job(&job)))
}

/// Puts back stored secrets where the patched spec holds their masked form, and refuses a masked
/// value that stands for no stored secret (the client would otherwise save `••••` as the value).
/// On create there is nothing stored, so any masked value is refused.
fn restore_masked_headers(
    patched: &mut Value,
    stored: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let Some(Value::Object(headers)) = patched
        .get_mut("request")
        .and_then(|request| request.get_mut("headers"))
    else {
        return Ok(());
    };
    for (name, value) in headers.iter_mut() {
        let Value::String(sent) = value else { continue };
        if !sent.starts_with(secrets::MASK) {
            continue;
        }
        let stored_value = stored.get(name).or_else(|| {
            stored
                .iter()
                .find(|(stored_name, _)| stored_name.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        });
        match stored_value {
            Some(stored_value) if secrets::is_masked_form_of(sent, stored_value) => {
                *sent = stored_value.clone();
            }
            _ => {
                return Err(ApiError::invalid(
                    format!("request.headers.{name}"),
                    "is a masked value that does not match the stored secret; send the real value, or the masked value exactly as the API showed it",
                ));
            }
        }
    }
    Ok(())
}

/// Change a job
///
/// A JSON merge patch (RFC 7396), validated as a whole before anything changes. Sending a
/// masked secret header value back keeps the stored secret. Editing never fires the job.
#[utoipa::path(
    patch,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::JobId),
    request_body(content((schemas::JobPatch = "application/merge-patch+json"), (schemas::JobPatch = "application/json")), description = "The fields to change"),
    responses(
        (status = 200, description = "The job, changed", body = schemas::Job),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON (`Content-Type`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another job of this workspace has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused; `field` names it and `detail` says why", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn patch_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(mut patch): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let job = load_job(&state, &caller, &id).await?;
    strip_read_only(&mut patch)?;
    let mut patched = serde_json::to_value(&*job.spec).map_err(ApiError::internal)?;
    crate::merge_patch::merge_patch(&mut patched, &patch);
    let updated = replace_job_spec(&state, job, patched).await?;
    Ok(Json(render::job(&updated)))
}

/// Replaces `job`'s spec with `spec` (the API's JSON form of a whole spec), validated as a
/// whole before anything changes; masked secret header values sent back keep the stored
/// secrets. Never fires the job: `next_run_at` is recomputed from now only when the schedule or
/// the paused flag changes. The REST API's PATCH and the dashboard's edit form both end here.
pub(crate) async fn replace_job_spec(
    state: &AppState,
    job: Job,
    mut spec: Value,
) -> Result<Job, ApiError> {
    strip_read_only(&mut spec)?;
    restore_masked_headers(&mut spec, &job.spec.request.headers)?;
    let spec: JobSpec = from_json(spec)?;
    let schedule = validate_job(&spec, &job.id, job.created_at, &state.targets)?;
    crate::channels::check_channel_ids(
        state,
        &job.workspace_id,
        &spec.alerts.channels,
        "alerts.channels",
    )
    .await?;

    let now = now_ms();
    let schedule_changed =
        serde_json::to_value(&spec.schedule).ok() != serde_json::to_value(&job.spec.schedule).ok();
    let paused_changed = spec.paused != job.spec.paused;
    if schedule_changed {
        require_future(&schedule, now)?;
    }
    let next_run_at = if spec.paused {
        None
    } else if schedule_changed || paused_changed {
        schedule.next_after(now)
    } else {
        job.next_run_at
    };
    let updated = Job {
        spec: spec.into(),
        next_run_at,
        updated_at: now,
        ..job
    };
    state.store.update_job(&updated).await?;
    notify_edited(state, &updated.id);
    Ok(updated)
}

/// Delete a job and its history
#[utoipa::path(
    delete,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::JobId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    delete_job_by_id(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the job `id` of the caller's workspace and its history, or 404.
pub(crate) async fn delete_job_by_id(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found(format!("no job `{id}` in this workspace"));
    if !ids::has_prefix(id, ids::JOB) {
        return Err(not_found());
    }
    if !state.store.delete_job(&caller.workspace_id, id).await? {
        return Err(not_found());
    }
    notify_edited(state, id);
    Ok(())
}

/// Run a job now
///
/// Creates an execution with trigger `manual`, outside the schedule (paused jobs too).
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/run",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::JobId),
    responses(
        (status = 202, description = "The new execution, queued", body = schemas::Execution),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn run_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    let job = load_job(&state, &caller, &id).await?;
    let execution = start_execution(&state, &job, Trigger::Manual).await?;
    Ok((StatusCode::ACCEPTED, Json(render::execution(&execution))))
}

/// Pause a job
///
/// Nothing fires until it is resumed; pausing a paused job changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/pause",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::JobId),
    responses(
        (status = 200, description = "The job, paused", body = schemas::Job),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn pause_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let job = load_job(&state, &caller, &id).await?;
    Ok(Json(render::job(&pause(&state, job).await?)))
}

/// Pauses `job`; a paused job is returned unchanged.
pub(crate) async fn pause(state: &AppState, job: Job) -> Result<Job, ApiError> {
    if job.spec.paused {
        return Ok(job);
    }
    let mut job = job;
    std::sync::Arc::make_mut(&mut job.spec).paused = true;
    job.next_run_at = None;
    job.updated_at = now_ms();
    state.store.update_job(&job).await?;
    notify_edited(state, &job.id);
    Ok(job)
}

/// Resume a job
///
/// The next occurrence is computed from now; occurrences missed while paused do not fire.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/resume",
    tag = "jobs",
    security(("api_key" = [])),
    params(schemas::JobId),
    responses(
        (status = 200, description = "The job, resumed", body = schemas::Job),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn resume_job(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let job = load_job(&state, &caller, &id).await?;
    Ok(Json(render::job(&resume(&state, job).await?)))
}

/// Resumes `job` from now (occurrences missed while paused do not fire); a running job is
/// returned unchanged.
pub(crate) async fn resume(state: &AppState, job: Job) -> Result<Job, ApiError> {
    // Resuming a running job changes nothing: recomputing could drop a due occurrence.
    if !job.spec.paused {
        return Ok(job);
    }
    let schedule = compile_stored(&job)?;
    let now = now_ms();
    let mut job = job;
    std::sync::Arc::make_mut(&mut job.spec).paused = false;
    job.next_run_at = schedule.next_after(now);
    job.updated_at = now;
    state.store.update_job(&job).await?;
    notify(state);
    Ok(job)
}

/// Tells the scheduler that jobs changed, so it re-reads what is due.
fn notify(state: &AppState) {
    // `notify_one` stores a permit when the scheduler is not waiting at this instant, so a change
    // made while it is busy is not lost.
    state.jobs_changed.notify_one();
}

/// [`notify`], and tells this process's executor that the job's executions prepared ahead of
/// their instant may have been discarded by the change (the store deleted them).
fn notify_edited(state: &AppState, job_id: &str) {
    if let Some(executor) = &state.executor {
        executor.job_edited(job_id);
    }
    notify(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> JobSpec {
        serde_json::from_value(json!({
            "name": "n",
            "schedule": {"cron": "0 3 * * *"},
            "request": {
                "url": "https://example.com/",
                "headers": {"Authorization": "Bearer abcdefgh1234"}
            }
        }))
        .expect("spec parses")
    }

    #[test]
    fn a_masked_header_sent_back_keeps_the_stored_secret() {
        let mut patched = json!({"request": {"headers": {"authorization": "••••1234"}}});
        restore_masked_headers(&mut patched, &stored().request.headers).expect("restored");
        assert_eq!(
            patched["request"]["headers"]["authorization"],
            "Bearer abcdefgh1234"
        );
    }

    #[test]
    fn a_new_value_replaces_the_secret_and_a_foreign_mask_is_refused() {
        let mut patched = json!({"request": {"headers": {"Authorization": "Bearer new"}}});
        restore_masked_headers(&mut patched, &stored().request.headers).expect("kept");
        assert_eq!(patched["request"]["headers"]["Authorization"], "Bearer new");

        let mut wrong = json!({"request": {"headers": {"Authorization": "••••9999"}}});
        let error =
            restore_masked_headers(&mut wrong, &stored().request.headers).expect_err("refused");
        assert_eq!(error.body()["field"], "request.headers.Authorization");
    }
}
