//! Executions: a job's history, one execution, and replay; plus how run-now and replay start a
//! new execution (leased to this process's executor when it has one, queued otherwise).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cronhook_core::{Execution, ExecutionStatus, Job, Trigger, ids};
use cronhook_store::{ClaimedExecution, ExecutionFilter, Lease, NewExecution, StoreError};
use serde_json::Value;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{IdPath, Params, list_body, page_request};
use crate::jobs::{load_job, now_ms};
use crate::render;
use crate::schemas::{self, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_executions))
        .routes(routes!(get_execution))
        .routes(routes!(replay_execution))
}

/// How many later milliseconds a manual run tries when its instant is taken.
const MANUAL_RUN_TRIES: u32 = 1_000;

/// Creates an execution of `job` for now, outside its schedule, and hands it to the local
/// executor when there is one. Returns it as created: queued, with no attempts.
pub(crate) async fn start_execution(
    state: &AppState,
    job: &Job,
    trigger: Trigger,
) -> Result<Execution, ApiError> {
    let now = now_ms();
    let lease = state.executor.as_ref().map(|executor| Lease {
        node_id: executor.node_id().to_owned(),
        until: now
            + chrono::Duration::from_std(executor.lease_duration())
                .unwrap_or(chrono::Duration::minutes(5)),
    });
    let mut new = NewExecution {
        id: ids::new_id(ids::EXECUTION),
        workspace_id: job.workspace_id.clone(),
        job_id: job.id.clone(),
        scheduled_for: now,
        trigger,
        run_at: now,
        lease,
    };
    // A manual run is not an occurrence of the schedule, but it shares the one-execution-per-
    // (job, instant) key: runs asked for in the same millisecond (or at an occurrence's instant)
    // take the next free millisecond instead of clashing.
    let mut tries = 0;
    loop {
        match state.store.insert_execution(&new).await {
            Ok(()) => break,
            Err(StoreError::Conflict { .. }) if tries < MANUAL_RUN_TRIES => {
                tries += 1;
                new.scheduled_for += chrono::Duration::milliseconds(1);
            }
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(executor) = &state.executor {
        executor.submit(ClaimedExecution {
            id: new.id.clone(),
            workspace_id: new.workspace_id.clone(),
            job_id: new.job_id.clone(),
            scheduled_for: new.scheduled_for,
            trigger,
            attempts_done: 0,
            interrupted: false,
            started_at: None,
            spec: job.spec.clone(),
        });
    }
    Ok(Execution {
        id: new.id,
        workspace_id: new.workspace_id,
        job_id: new.job_id,
        scheduled_for: new.scheduled_for,
        trigger,
        status: ExecutionStatus::Queued,
        started_at: None,
        finished_at: None,
        duration_ms: None,
        attempts: Vec::new(),
    })
}

fn parse_status(text: &str) -> Result<ExecutionStatus, ApiError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| {
        ApiError::bad_parameter(
            "status",
            format!(
                "`{text}` is not an execution status; use one of queued, running, retrying, succeeded, failed, skipped, cancelled"
            ),
        )
    })
}

/// List a job's executions
///
/// Newest first (by scheduled instant, which is unique within a job), with their attempts.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/executions",
    tag = "executions",
    security(("api_key" = [])),
    params(schemas::JobId, schemas::PageQuery, schemas::ExecutionQuery),
    responses(
        (status = 200, description = "A page of executions", body = schemas::ExecutionList),
        (status = 400, description = "`limit`, `cursor` or `status` is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_executions(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(job_id): IdPath,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let page = page_request(&params)?;
    let filter = ExecutionFilter {
        status: params.get("status").map(parse_status).transpose()?,
    };
    let job = load_job(&state, &caller, &job_id).await?;
    let executions = state
        .store
        .list_executions(&caller.workspace_id, &job.id, &filter, &page)
        .await?;
    let data = executions.items.iter().map(render::execution).collect();
    Ok(Json(list_body(data, executions.next_after.as_deref())))
}

async fn load_execution(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Execution, ApiError> {
    let not_found = || ApiError::not_found(format!("no execution `{id}` in this workspace"));
    if !ids::has_prefix(id, ids::EXECUTION) {
        return Err(not_found());
    }
    state
        .store
        .execution(&caller.workspace_id, id)
        .await?
        .ok_or_else(not_found)
}

/// Read an execution
///
/// With every attempt: status code, error, response headers and body, timing.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}",
    tag = "executions",
    security(("api_key" = [])),
    params(schemas::ExecutionId),
    responses(
        (status = 200, description = "The execution", body = schemas::Execution),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No execution with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_execution(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let execution = load_execution(&state, &caller, &id).await?;
    Ok(Json(render::execution(&execution)))
}

/// Replay an execution
///
/// Creates a new execution (trigger `replay`) that sends the job's request again.
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/replay",
    tag = "executions",
    security(("api_key" = [])),
    params(schemas::ExecutionId),
    responses(
        (status = 202, description = "The new execution, queued", body = schemas::Execution),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No execution with this id (or its job is gone) in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn replay_execution(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    let original = load_execution(&state, &caller, &id).await?;
    let job = load_job(&state, &caller, &original.job_id).await?;
    let execution = start_execution(&state, &job, Trigger::Replay).await?;
    Ok((StatusCode::ACCEPTED, Json(render::execution(&execution))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters_parse_or_name_the_parameter() {
        assert_eq!(parse_status("failed").ok(), Some(ExecutionStatus::Failed));
        let error = parse_status("broken").expect_err("refused");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.body()["field"], "status");
    }
}
