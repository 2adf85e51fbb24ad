//! The execution page: every attempt with its status or error, timing, response headers and
//! body, the request as sent (secrets masked), and replay.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use cronhook_core::{Execution, ExecutionStatus, Job, Trigger, ids, secrets};

use super::jobs::enum_word;
use super::session::{self, Viewer};
use super::view::{self, Stamp};
use super::{Layout, PageError, PageResult, render};
use crate::AppState;

struct TimingPart {
    label: &'static str,
    ms: String,
    /// Width of the bar, in percent of the total.
    share: u64,
}

struct AttemptView {
    number: u32,
    started: String,
    duration: String,
    status_code: Option<u16>,
    error_kind: Option<String>,
    error_message: Option<String>,
    timing: Vec<TimingPart>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    body_is_json: bool,
    truncated: bool,
    redirect_location: Option<String>,
}

/// What changes while an execution runs: its status, times and attempts.
struct LiveView {
    status: String,
    trigger: String,
    scheduled: String,
    started: String,
    finished: String,
    duration: String,
    attempts: Vec<AttemptView>,
    /// Polled while the execution is unfinished.
    poll: Option<String>,
}

#[derive(Template)]
#[template(path = "execution.html")]
struct ExecutionPage {
    l: Layout,
    id: String,
    job_id: String,
    job_name: String,
    method: String,
    url: String,
    request_headers: Vec<(String, String)>,
    request_body: Option<String>,
    live: LiveView,
}

#[derive(Template)]
#[template(path = "execution_live.html")]
struct LiveFragment {
    live: LiveView,
}

async fn load(state: &AppState, viewer: &Viewer, id: &str) -> Result<Execution, PageError> {
    if !ids::has_prefix(id, ids::EXECUTION) {
        return Err(PageError::not_found());
    }
    state
        .store
        .execution(&viewer.user.workspace_id, id)
        .await?
        .ok_or_else(PageError::not_found)
}

fn timing(attempt: &cronhook_core::Attempt) -> Vec<TimingPart> {
    let total = attempt.timing.total_ms.max(1);
    let parts = [
        ("DNS", attempt.timing.dns_ms),
        ("Connect", attempt.timing.connect_ms),
        ("TLS", attempt.timing.tls_ms),
        ("First byte", attempt.timing.ttfb_ms),
        ("Total", Some(attempt.timing.total_ms)),
    ];
    parts
        .into_iter()
        .filter_map(|(label, ms)| {
            ms.map(|ms| TimingPart {
                label,
                ms: view::duration_ms(ms),
                share: (ms.saturating_mul(100) / total).clamp(1, 100),
            })
        })
        .collect()
}

fn live_view(execution: &Execution) -> LiveView {
    let attempts = execution
        .attempts
        .iter()
        .map(|attempt| {
            let content_type = attempt
                .response_headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .map(|(_, value)| value.as_str());
            let (body, body_is_json) = match &attempt.response_body {
                Some(body) => {
                    let (body, json) = view::pretty_body(body, content_type);
                    (Some(body), json)
                }
                None => (None, false),
            };
            AttemptView {
                number: attempt.number,
                started: Stamp(attempt.started_at).to_string(),
                duration: view::duration_ms(attempt.duration_ms),
                status_code: attempt.status_code,
                error_kind: attempt.error.as_ref().map(|error| enum_word(&error.kind)),
                error_message: attempt.error.as_ref().map(|error| error.message.clone()),
                timing: timing(attempt),
                headers: attempt
                    .response_headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
                body,
                body_is_json,
                truncated: attempt.response_body_truncated,
                redirect_location: attempt.redirect_location.clone(),
            }
        })
        .collect();
    LiveView {
        status: view::status_badge(execution.status),
        trigger: enum_word(&execution.trigger),
        scheduled: Stamp(execution.scheduled_for).to_string(),
        started: view::stamp(execution.started_at),
        finished: view::stamp(execution.finished_at),
        duration: view::optional_duration(execution.duration_ms),
        attempts,
        poll: (!execution.status.is_final()).then(|| format!("/executions/{}/live", execution.id)),
    }
}

/// The request as cronhook sends it: the job's headers (secrets masked) and the headers it adds.
fn request_headers(job: &Job, execution: &Execution) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = job
        .spec
        .request
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = if secrets::is_secret_header(name) {
                secrets::mask(value)
            } else {
                value.clone()
            };
            (name.clone(), shown)
        })
        .collect();
    headers.push((
        "User-Agent".to_owned(),
        format!("cronhook/{}", env!("CARGO_PKG_VERSION")),
    ));
    headers.push((
        "cronhook-scheduled-for".to_owned(),
        crate::render::timestamp(execution.scheduled_for),
    ));
    headers.push(("webhook-id".to_owned(), execution.id.clone()));
    headers.push((
        "webhook-signature".to_owned(),
        format!("{}(signed per attempt)", secrets::MASK),
    ));
    headers
}

/// `GET /executions/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let execution = load(&state, &viewer, &id).await?;
    let job = crate::jobs::load_job(&state, &viewer.caller(), &execution.job_id).await?;
    let page = ExecutionPage {
        l: Layout::new(format!("Execution of {}", job.spec.name), &viewer, "jobs"),
        id: execution.id.clone(),
        job_id: job.id.clone(),
        job_name: job.spec.name.clone(),
        method: job.spec.request.method.clone(),
        url: job.spec.request.url.clone(),
        request_headers: request_headers(&job, &execution),
        request_body: job.spec.request.body.clone(),
        live: live_view(&execution),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /executions/{id}/live`: the changing part alone, for live refresh.
pub(crate) async fn live_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let execution = load(&state, &viewer, &id).await?;
    Ok(render(
        StatusCode::OK,
        &LiveFragment {
            live: live_view(&execution),
        },
    ))
}

/// `POST /executions/{id}/replay`: sends the job's request again as a new execution, and shows
/// it.
pub(crate) async fn replay(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, form.get("csrf").map(String::as_str))?;
    let original = load(&state, &viewer, &id).await?;
    let job = crate::jobs::load_job(&state, &viewer.caller(), &original.job_id).await?;
    let execution = crate::executions::start_execution(&state, &job, Trigger::Replay).await?;
    debug_assert_eq!(execution.status, ExecutionStatus::Queued);
    Ok(Redirect::to(&format!("/executions/{}", execution.id)).into_response())
}
