//! Job pages: the list (state at a glance), one job (schedule, charts, history), the form
//! (create and edit, with a live schedule preview), and the job's actions.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use cronhook_core::validate::METHODS;
use cronhook_core::{CompiledSchedule, ExecutionStatus, Job, ScheduleSpec, Trigger, ids, secrets};
use cronhook_store::{ExecutionFilter, ExecutionPoint, PageRequest};
use serde_json::{Value, json};

use super::session::{self, Viewer};
use super::view::{self, Charts, Stamp};
use super::{Layout, PageError, PageResult, render};
use crate::extract::Params;
use crate::{ApiError, AppState};

/// Jobs shown per page of the list.
const JOBS_PER_PAGE: usize = 50;
/// Executions shown per page of a job's history.
const HISTORY_PER_PAGE: u32 = 20;
/// Executions drawn in a sparkline.
const SPARK_RUNS: u32 = 30;
/// The most executions read for a chart (a job firing every minute has 10 080 in 7 days).
const CHART_RUNS: u32 = 20_000;

// Shared pieces.

/// The job `id` of the viewer's workspace, or the 404 page.
async fn load_job(state: &AppState, viewer: &Viewer, id: &str) -> Result<Job, PageError> {
    Ok(crate::jobs::load_job(state, &viewer.caller(), id).await?)
}

/// A job's state at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Active,
    Paused,
    Failing,
}

impl JobState {
    fn of(job: &Job, recent: &[ExecutionPoint]) -> JobState {
        if job.spec.paused {
            return JobState::Paused;
        }
        let last_final = recent.iter().find(|p| {
            matches!(
                p.status,
                ExecutionStatus::Succeeded | ExecutionStatus::Failed
            )
        });
        match last_final {
            Some(point) if point.status == ExecutionStatus::Failed => JobState::Failing,
            _ => JobState::Active,
        }
    }

    fn word(self) -> &'static str {
        match self {
            JobState::Active => "active",
            JobState::Paused => "paused",
            JobState::Failing => "failing",
        }
    }

    fn badge(self) -> String {
        let (glyph, class) = match self {
            JobState::Active => ("●", "ok"),
            JobState::Paused => ("❚❚", "muted"),
            JobState::Failing => ("✗", "bad"),
        };
        format!(
            "<span class=\"badge {class}\" data-state=\"{}\"><span aria-hidden=\"true\">{glyph}</span> {}</span>",
            self.word(),
            self.word()
        )
    }
}

/// A job's schedule in words, its expression and its zone.
struct ScheduleView {
    description: String,
    expression: String,
    timezone: String,
}

fn schedule_view(job: &Job) -> ScheduleView {
    let description = CompiledSchedule::compile(&job.spec.schedule, &job.id, job.created_at)
        .map(|schedule| schedule.describe())
        .unwrap_or_else(|error| format!("invalid schedule: {}", error.message));
    match &job.spec.schedule {
        ScheduleSpec::Cron { cron, timezone } => ScheduleView {
            description,
            expression: cron.clone(),
            timezone: timezone.clone(),
        },
        ScheduleSpec::At { at } => ScheduleView {
            description,
            expression: format!("once at {}", crate::render::timestamp(*at)),
            timezone: "UTC".to_owned(),
        },
    }
}

// The list.

struct JobRow {
    id: String,
    name: String,
    description: String,
    timezone: String,
    state: &'static str,
    state_badge: String,
    last: String,
    next_run: String,
    sparkline: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    l: Layout,
    rows: Vec<JobRow>,
    q: String,
    filters: Vec<(&'static str, &'static str, bool)>,
    total: usize,
    matching: usize,
    previous_page: Option<String>,
    next_page: Option<String>,
}

/// Every job of the workspace, in creation order.
async fn all_jobs(state: &AppState, workspace_id: &str) -> Result<Vec<Job>, PageError> {
    let mut jobs = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_jobs(
                workspace_id,
                &PageRequest {
                    limit: crate::extract::MAX_LIMIT,
                    after,
                },
            )
            .await?;
        jobs.extend(page.items);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(jobs),
        }
    }
}

fn list_url(q: &str, filter: &str, page: usize) -> String {
    let mut url = format!("/?page={page}");
    if !q.is_empty() {
        url.push_str(&format!("&q={}", view::query_escape(q)));
    }
    if !filter.is_empty() && filter != "all" {
        url.push_str(&format!("&state={filter}"));
    }
    url
}

/// `GET /`: the jobs list, or the sign-in page for a visitor.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let q = query
        .get("q")
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    let filter = query
        .get("state")
        .filter(|s| matches!(s.as_str(), "active" | "paused" | "failing"))
        .cloned()
        .unwrap_or_else(|| "all".to_owned());
    let page_number = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let jobs = all_jobs(&state, &viewer.user.workspace_id).await?;
    let total = jobs.len();
    let needle = q.to_lowercase();
    let mut rows = Vec::new();
    for job in jobs {
        if !needle.is_empty() && !job.spec.name.to_lowercase().contains(&needle) {
            continue;
        }
        let recent = state
            .store
            .execution_points(&viewer.user.workspace_id, &job.id, None, SPARK_RUNS)
            .await?;
        let job_state = JobState::of(&job, &recent);
        if filter != "all" && job_state.word() != filter {
            continue;
        }
        let schedule = schedule_view(&job);
        let last = recent.iter().find(|p| p.status.is_final()).map_or_else(
            || "<span class=\"muted\">never run</span>".to_owned(),
            |p| {
                format!(
                    "{} {}",
                    view::status_badge(p.status),
                    view::stamp(p.finished_at.or(p.started_at).or(Some(p.scheduled_for)))
                )
            },
        );
        rows.push(JobRow {
            id: job.id.clone(),
            name: job.spec.name.clone(),
            // The description names a zone other than UTC itself.
            timezone: if schedule.description.contains(&schedule.timezone) {
                String::new()
            } else {
                schedule.timezone
            },
            description: schedule.description,
            state: job_state.word(),
            state_badge: job_state.badge(),
            last,
            next_run: if job.spec.paused {
                "<span class=\"muted\">paused</span>".to_owned()
            } else {
                view::stamp(job.next_run_at)
            },
            sparkline: view::sparkline(&recent),
        });
    }
    let matching = rows.len();
    let pages = matching.div_ceil(JOBS_PER_PAGE).max(1);
    let page_number = page_number.min(pages);
    let rows: Vec<JobRow> = rows
        .into_iter()
        .skip((page_number - 1) * JOBS_PER_PAGE)
        .take(JOBS_PER_PAGE)
        .collect();
    let filters = ["all", "active", "paused", "failing"]
        .into_iter()
        .map(|f| {
            let label = match f {
                "all" => "All",
                "active" => "Active",
                "paused" => "Paused",
                _ => "Failing",
            };
            (f, label, f == filter)
        })
        .collect();
    let page = JobsPage {
        l: Layout::new("Jobs", &viewer, "jobs"),
        rows,
        previous_page: (page_number > 1).then(|| list_url(&q, &filter, page_number - 1)),
        next_page: (page_number < pages).then(|| list_url(&q, &filter, page_number + 1)),
        q,
        filters,
        total,
        matching,
    };
    Ok(render(StatusCode::OK, &page))
}

// One job.

struct HistoryRow {
    id: String,
    status: String,
    trigger: &'static str,
    scheduled: String,
    duration: String,
    code: String,
}

/// A job's execution history: one page, its filters, and whether it is still changing.
struct HistoryView {
    job_id: String,
    rows: Vec<HistoryRow>,
    failed_only: bool,
    /// The link to the page after this one.
    older: Option<String>,
    /// Whether this is a later page (offer the way back to the newest).
    paged: bool,
    /// The fragment URL to poll while some execution shown is unfinished.
    poll: Option<String>,
}

fn trigger_word(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Schedule => "schedule",
        Trigger::Manual => "manual",
        Trigger::Catchup => "catch-up",
        Trigger::Replay => "replay",
    }
}

async fn history(
    state: &AppState,
    viewer: &Viewer,
    job: &Job,
    query: &HashMap<String, String>,
) -> Result<HistoryView, PageError> {
    let failed_only = query.get("failed").is_some_and(|v| v == "1");
    let after = query
        .get("after")
        .filter(|after| ids::has_prefix(after, ids::EXECUTION))
        .cloned();
    let page = state
        .store
        .list_executions(
            &viewer.user.workspace_id,
            &job.id,
            &ExecutionFilter {
                status: failed_only.then_some(ExecutionStatus::Failed),
            },
            &PageRequest {
                limit: HISTORY_PER_PAGE,
                after: after.clone(),
            },
        )
        .await?;
    let filter = if failed_only { "&failed=1" } else { "" };
    let unfinished = page.items.iter().any(|e| !e.status.is_final());
    let rows = page
        .items
        .iter()
        .map(|execution| {
            let last = execution.attempts.last();
            let code = match last {
                Some(attempt) => match (&attempt.error, attempt.status_code) {
                    (Some(error), Some(code)) => format!("{code} ({})", enum_word(&error.kind)),
                    (Some(error), None) => enum_word(&error.kind),
                    (None, Some(code)) => code.to_string(),
                    (None, None) => "—".to_owned(),
                },
                None => "—".to_owned(),
            };
            HistoryRow {
                id: execution.id.clone(),
                status: view::status_badge(execution.status),
                trigger: trigger_word(execution.trigger),
                scheduled: view::Stamp(execution.scheduled_for).to_string(),
                duration: view::optional_duration(execution.duration_ms),
                code,
            }
        })
        .collect();
    Ok(HistoryView {
        job_id: job.id.clone(),
        rows,
        failed_only,
        older: page
            .next_after
            .map(|next| format!("/jobs/{}?after={next}{filter}#history", job.id)),
        paged: after.is_some(),
        // Only the newest page changes by itself.
        poll: (unfinished && after.is_none())
            .then(|| format!("/jobs/{}/history?x=1{filter}", job.id)),
    })
}

/// The snake_case word serde gives a unit enum.
pub(crate) fn enum_word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(word)) => word,
        _ => "unknown".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    l: Layout,
    id: String,
    name: String,
    paused: bool,
    state_badge: String,
    schedule: ScheduleView,
    next_runs: Vec<String>,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    range: &'static str,
    charts: Charts,
    history: HistoryView,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryFragment {
    history: HistoryView,
}

/// `GET /jobs/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let job = load_job(&state, &viewer, &id).await?;
    let now = Utc::now().trunc_subsecs(0);
    let recent = state
        .store
        .execution_points(&viewer.user.workspace_id, &job.id, None, SPARK_RUNS)
        .await?;
    let (range, window, buckets) = match query.get("range").map(String::as_str) {
        Some("7d") => ("7d", Duration::days(7), 28),
        _ => ("24h", Duration::hours(24), 24),
    };
    let points = state
        .store
        .execution_points(
            &viewer.user.workspace_id,
            &job.id,
            Some(now - window),
            CHART_RUNS,
        )
        .await?;
    let next_runs = if job.spec.paused {
        Vec::new()
    } else {
        match CompiledSchedule::compile(&job.spec.schedule, &job.id, job.created_at) {
            Ok(schedule) => {
                let from = job
                    .next_run_at
                    .map_or(now, |next| next - Duration::milliseconds(1));
                schedule
                    .upcoming(from, 5)
                    .into_iter()
                    .map(|at| Stamp(at).to_string())
                    .collect()
            }
            Err(_) => Vec::new(),
        }
    };
    let headers = job
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
    let history = history(&state, &viewer, &job, &query).await?;
    let page = JobPage {
        l: Layout::new(job.spec.name.clone(), &viewer, "jobs"),
        id: job.id.clone(),
        name: job.spec.name.clone(),
        paused: job.spec.paused,
        state_badge: JobState::of(&job, &recent).badge(),
        schedule: schedule_view(&job),
        next_runs,
        method: job.spec.request.method.clone(),
        url: job.spec.request.url.clone(),
        headers,
        body: job.spec.request.body.clone(),
        range,
        charts: view::charts(&points, now, window, buckets),
        history,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /jobs/{id}/history`: the history section alone, for live refresh.
pub(crate) async fn history_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let job = load_job(&state, &viewer, &id).await?;
    let history = history(&state, &viewer, &job, &query).await?;
    Ok(render(StatusCode::OK, &HistoryFragment { history }))
}

// Actions.

fn csrf(form: &HashMap<String, String>) -> Option<&str> {
    form.get("csrf").map(String::as_str)
}

/// `POST /jobs/{id}/run`: a manual execution now; back to the job, where it appears live.
pub(crate) async fn run(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let job = load_job(&state, &viewer, &id).await?;
    crate::executions::start_execution(&state, &job, Trigger::Manual).await?;
    Ok(Redirect::to(&format!("/jobs/{}#history", job.id)).into_response())
}

/// `POST /jobs/{id}/pause`.
pub(crate) async fn pause(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let job = load_job(&state, &viewer, &id).await?;
    let job = crate::jobs::pause(&state, job).await?;
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

/// `POST /jobs/{id}/resume`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let job = load_job(&state, &viewer, &id).await?;
    let job = crate::jobs::resume(&state, job).await?;
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    l: Layout,
    id: String,
    name: String,
}

/// `GET /jobs/{id}/delete`: the confirmation (works without JavaScript).
pub(crate) async fn delete_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let job = load_job(&state, &viewer, &id).await?;
    let page = DeletePage {
        l: Layout::new(format!("Delete {}", job.spec.name), &viewer, "jobs"),
        id: job.id,
        name: job.spec.name.clone(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /jobs/{id}/delete`: deletes the job and its history.
pub(crate) async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    crate::jobs::delete_job_by_id(&state, &viewer.caller(), &id).await?;
    Ok(Redirect::to("/").into_response())
}

// The form.

/// One input: what is in it, and what is wrong with it.
#[derive(Debug, Clone, Default)]
struct Field {
    value: String,
    error: Option<String>,
}

/// A `<select>` option.
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn choices(options: &[(&'static str, &'static str)], current: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value,
            label,
            selected: *value == current,
        })
        .collect()
}

/// The schedule preview beside the form: the expression in words and its next runs.
struct PreviewView {
    description: Option<String>,
    next: Vec<String>,
    error: Option<String>,
}

fn preview(cron: &str, timezone: &str) -> PreviewView {
    if cron.trim().is_empty() {
        return PreviewView {
            description: None,
            next: Vec::new(),
            error: None,
        };
    }
    let mut params = HashMap::new();
    params.insert("cron".to_owned(), cron.to_owned());
    let timezone = if timezone.trim().is_empty() {
        "UTC"
    } else {
        timezone.trim()
    };
    params.insert("timezone".to_owned(), timezone.to_owned());
    match crate::preview::preview_body(&Params(params), Utc::now().trunc_subsecs(0)) {
        Ok(body) => PreviewView {
            description: body["description"].as_str().map(str::to_owned),
            next: body["next"]
                .as_array()
                .map(|next| {
                    next.iter()
                        .filter_map(|at| at.as_str())
                        .filter_map(|at| DateTime::parse_from_rfc3339(at).ok())
                        .map(|at| Stamp(at.with_timezone(&Utc)).to_string())
                        .collect()
                })
                .unwrap_or_default(),
            error: None,
        },
        Err(error) => PreviewView {
            description: None,
            next: Vec::new(),
            error: Some(error.message().to_owned()),
        },
    }
}

/// Every IANA zone name, for the time zone field's suggestions.
fn zones() -> &'static [&'static str] {
    static ZONES: OnceLock<Vec<&'static str>> = OnceLock::new();
    ZONES.get_or_init(|| chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect())
}

#[derive(Template)]
#[template(path = "job_form.html")]
struct JobFormPage {
    l: Layout,
    heading: String,
    action: String,
    submit: &'static str,
    cancel: String,
    general_error: Option<String>,
    name: Field,
    cron: Field,
    at: Field,
    timezone: Field,
    methods: Vec<Choice>,
    method: Field,
    url: Field,
    headers: Field,
    body: Field,
    timeout: Field,
    max_attempts: Field,
    success_status: Field,
    follow_redirects: bool,
    concurrency: Vec<Choice>,
    misfire: Vec<Choice>,
    preview: PreviewView,
    zones: &'static [&'static str],
}

const CONCURRENCY: [(&str, &str); 3] = [
    ("allow", "Allow overlapping runs"),
    ("forbid", "Skip a run while the previous one is running"),
    ("replace", "Cancel the running one and start the new one"),
];
const MISFIRE: [(&str, &str); 3] = [
    ("fire_once", "Run once for all missed"),
    ("skip", "Skip missed runs"),
    ("fire_all", "Run each missed (up to 100)"),
];

/// What the form shows: typed values (kept as typed) and their errors.
struct FormValues {
    name: String,
    cron: String,
    at: String,
    timezone: String,
    method: String,
    url: String,
    headers: String,
    body: String,
    timeout: String,
    max_attempts: String,
    success_status: String,
    follow_redirects: bool,
    concurrency: String,
    misfire: String,
}

impl FormValues {
    fn defaults() -> Self {
        FormValues {
            name: String::new(),
            cron: "0 * * * *".to_owned(),
            at: String::new(),
            timezone: "UTC".to_owned(),
            method: "GET".to_owned(),
            url: String::new(),
            headers: String::new(),
            body: String::new(),
            timeout: "30".to_owned(),
            max_attempts: "3".to_owned(),
            success_status: "2xx".to_owned(),
            follow_redirects: false,
            concurrency: "allow".to_owned(),
            misfire: "fire_once".to_owned(),
        }
    }

    fn of_job(job: &Job) -> Self {
        let spec = &job.spec;
        let (cron, at, timezone) = match &spec.schedule {
            ScheduleSpec::Cron { cron, timezone } => {
                (cron.clone(), String::new(), timezone.clone())
            }
            ScheduleSpec::At { at } => (
                String::new(),
                crate::render::timestamp(*at),
                "UTC".to_owned(),
            ),
        };
        let headers = spec
            .request
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if secrets::is_secret_header(name) {
                    secrets::mask(value)
                } else {
                    value.clone()
                };
                format!("{name}: {shown}")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let success_status = match &spec.success.status {
            cronhook_core::StatusRule::Classes(text) => text.clone(),
            cronhook_core::StatusRule::Codes(codes) => codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        FormValues {
            name: spec.name.clone(),
            cron,
            at,
            timezone,
            method: spec.request.method.clone(),
            url: spec.request.url.clone(),
            headers,
            body: spec.request.body.clone().unwrap_or_default(),
            timeout: (spec.request.timeout_ms / 1_000).to_string(),
            max_attempts: spec.retry.max_attempts.to_string(),
            success_status,
            follow_redirects: spec.request.follow_redirects,
            concurrency: enum_word(&spec.concurrency),
            misfire: enum_word(&spec.misfire),
        }
    }

    fn from_form(form: &HashMap<String, String>) -> Self {
        let get = |name: &str| form.get(name).cloned().unwrap_or_default();
        FormValues {
            name: get("name"),
            cron: get("cron"),
            at: get("at"),
            timezone: get("timezone"),
            method: get("method"),
            url: get("url"),
            headers: get("headers"),
            body: get("body"),
            timeout: get("timeout"),
            max_attempts: get("max_attempts"),
            success_status: get("success_status"),
            follow_redirects: form.contains_key("follow_redirects"),
            concurrency: get("concurrency"),
            misfire: get("misfire"),
        }
    }
}

/// Which form input an API field path belongs to.
fn input_of(field: &str) -> &'static str {
    match field {
        "name" => "name",
        "schedule.cron" | "schedule" => "cron",
        "schedule.at" => "at",
        "schedule.timezone" => "timezone",
        "request.method" => "method",
        "request.url" => "url",
        "request.body" => "body",
        "request.timeout_ms" => "timeout",
        "retry.max_attempts" => "max_attempts",
        "success.status" => "success_status",
        field if field.starts_with("request.headers") => "headers",
        _ => "",
    }
}

/// Errors found in the form before the spec is built, or by validation: input → message.
type FormErrors = BTreeMap<&'static str, String>;

/// Builds the job's spec (the API's JSON form) from the form, on top of `base` (the stored
/// spec when editing, so fields the form does not show are kept).
fn spec_from_form(values: &FormValues, base: Value) -> Result<Value, FormErrors> {
    let mut errors = FormErrors::new();
    let mut headers = serde_json::Map::new();
    for (index, line) in values.headers.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                headers.insert(name.trim().to_owned(), json!(value.trim()));
            }
            _ => {
                errors.insert(
                    "headers",
                    format!(
                        "Line {} is not a header: write one `Name: value` per line.",
                        index + 1
                    ),
                );
            }
        }
    }
    let timeout_ms = match values.timeout.trim().parse::<u64>() {
        Ok(seconds) if (1..=900).contains(&seconds) => seconds * 1_000,
        _ => {
            errors.insert(
                "timeout",
                "Must be a whole number of seconds between 1 and 900.".to_owned(),
            );
            0
        }
    };
    let max_attempts = match values.max_attempts.trim().parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            errors.insert(
                "max_attempts",
                "Must be a whole number between 1 and 20 (it counts the first attempt).".to_owned(),
            );
            0
        }
    };
    let success = values.success_status.trim();
    let parts: Vec<&str> = success.split(',').map(str::trim).collect();
    let success_status = if !parts.is_empty() && parts.iter().all(|p| p.parse::<u16>().is_ok()) {
        json!(
            parts
                .iter()
                .filter_map(|p| p.parse::<u16>().ok())
                .collect::<Vec<_>>()
        )
    } else {
        json!(success)
    };
    let schedule = if values.cron.trim().is_empty() && !values.at.trim().is_empty() {
        match DateTime::parse_from_rfc3339(values.at.trim()) {
            Ok(at) => json!({"at": at.with_timezone(&Utc)}),
            Err(_) => {
                errors.insert(
                    "at",
                    "Write an RFC 3339 time, such as 2030-01-31T09:00:00Z.".to_owned(),
                );
                Value::Null
            }
        }
    } else {
        let timezone = if values.timezone.trim().is_empty() {
            "UTC"
        } else {
            values.timezone.trim()
        };
        json!({"cron": values.cron.trim(), "timezone": timezone})
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut spec = match base {
        Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    spec.insert("name".into(), json!(values.name.trim()));
    spec.insert("schedule".into(), schedule);
    let mut request = match spec.remove("request") {
        Some(Value::Object(request)) => request,
        _ => serde_json::Map::new(),
    };
    request.insert("method".into(), json!(values.method.trim().to_uppercase()));
    request.insert("url".into(), json!(values.url.trim()));
    request.insert("headers".into(), Value::Object(headers));
    request.insert(
        "body".into(),
        if values.body.is_empty() {
            Value::Null
        } else {
            json!(values.body)
        },
    );
    request.insert("timeout_ms".into(), json!(timeout_ms));
    request.insert("follow_redirects".into(), json!(values.follow_redirects));
    spec.insert("request".into(), Value::Object(request));
    let mut retry = match spec.remove("retry") {
        Some(Value::Object(retry)) => retry,
        _ => serde_json::Map::new(),
    };
    retry.insert("max_attempts".into(), json!(max_attempts));
    spec.insert("retry".into(), Value::Object(retry));
    let mut rule = match spec.remove("success") {
        Some(Value::Object(rule)) => rule,
        _ => serde_json::Map::new(),
    };
    rule.insert("status".into(), success_status);
    spec.insert("success".into(), Value::Object(rule));
    spec.insert("concurrency".into(), json!(values.concurrency));
    spec.insert("misfire".into(), json!(values.misfire));
    Ok(Value::Object(spec))
}

/// The errors of a refused save, placed beside their inputs.
fn errors_of(error: ApiError) -> Result<FormErrors, PageError> {
    let mut errors = FormErrors::new();
    if error.status() == StatusCode::CONFLICT {
        errors.insert(
            "name",
            "Another job of this workspace has this name.".to_owned(),
        );
        return Ok(errors);
    }
    if !error.status().is_client_error() || error.status() == StatusCode::NOT_FOUND {
        return Err(error.into());
    }
    let input = error.field().map_or("", input_of);
    let message = error.message();
    let message = if input.is_empty() {
        match error.field() {
            Some(field) if !field.is_empty() => format!("{field}: {message}"),
            _ => message.to_owned(),
        }
    } else {
        upper_first(message)
    };
    errors.insert(input, message);
    Ok(errors)
}

pub(crate) fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn form_page(
    l: Layout,
    values: FormValues,
    errors: FormErrors,
    editing: Option<&Job>,
) -> JobFormPage {
    let field = |name: &'static str, value: &str| Field {
        value: value.to_owned(),
        error: errors.get(name).cloned(),
    };
    let (heading, action, submit, cancel) = match editing {
        Some(job) => (
            format!("Edit {}", job.spec.name),
            format!("/jobs/{}/edit", job.id),
            "Save",
            format!("/jobs/{}", job.id),
        ),
        None => (
            "New job".to_owned(),
            "/jobs/new".to_owned(),
            "Create",
            "/".to_owned(),
        ),
    };
    let method_options: Vec<(&'static str, &'static str)> =
        METHODS.iter().map(|m| (*m, *m)).collect();
    JobFormPage {
        l,
        heading,
        action,
        submit,
        cancel,
        general_error: errors.get("").cloned(),
        name: field("name", &values.name),
        cron: field("cron", &values.cron),
        at: field("at", &values.at),
        timezone: field("timezone", &values.timezone),
        methods: choices(&method_options, &values.method),
        method: field("method", &values.method),
        url: field("url", &values.url),
        headers: field("headers", &values.headers),
        body: field("body", &values.body),
        timeout: field("timeout", &values.timeout),
        max_attempts: field("max_attempts", &values.max_attempts),
        success_status: field("success_status", &values.success_status),
        follow_redirects: values.follow_redirects,
        concurrency: choices(&CONCURRENCY, &values.concurrency),
        misfire: choices(&MISFIRE, &values.misfire),
        preview: preview(&values.cron, &values.timezone),
        zones: zones(),
    }
}

/// `GET /jobs/new`.
pub(crate) async fn new_form(viewer: Viewer) -> PageResult {
    let page = form_page(
        Layout::new("New job", &viewer, "jobs"),
        FormValues::defaults(),
        FormErrors::new(),
        None,
    );
    Ok(render(StatusCode::OK, &page))
}

/// `POST /jobs/new`: creates the job through the API's own path, or shows the form again with
/// each error beside its input and everything as typed.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let values = FormValues::from_form(&form);
    let outcome = match spec_from_form(&values, json!({})) {
        Ok(spec) => {
            match crate::jobs::create_job_from_body(&state, &viewer.user.workspace_id, spec).await {
                Ok(job) => return Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response()),
                Err(error) => errors_of(error)?,
            }
        }
        Err(errors) => errors,
    };
    let page = form_page(
        Layout::new("New job", &viewer, "jobs"),
        values,
        outcome,
        None,
    );
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// `GET /jobs/{id}/edit`.
pub(crate) async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let job = load_job(&state, &viewer, &id).await?;
    let page = form_page(
        Layout::new(format!("Edit {}", job.spec.name), &viewer, "jobs"),
        FormValues::of_job(&job),
        FormErrors::new(),
        Some(&job),
    );
    Ok(render(StatusCode::OK, &page))
}

/// `POST /jobs/{id}/edit`: saves through the API's own path (masked secrets sent back keep the
/// stored values), or shows the form again with the errors.
pub(crate) async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let job = load_job(&state, &viewer, &id).await?;
    let values = FormValues::from_form(&form);
    let base = serde_json::to_value(&job.spec).map_err(ApiError::internal)?;
    let outcome = match spec_from_form(&values, base) {
        Ok(spec) => match crate::jobs::replace_job_spec(&state, job.clone(), spec).await {
            Ok(job) => return Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response()),
            Err(error) => errors_of(error)?,
        },
        Err(errors) => errors,
    };
    let page = form_page(
        Layout::new(format!("Edit {}", job.spec.name), &viewer, "jobs"),
        values,
        outcome,
        Some(&job),
    );
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewFragment {
    preview: PreviewView,
}

/// `GET /schedule/preview?cron=&timezone=`: the preview beside the form, for htmx.
pub(crate) async fn preview_fragment(
    _viewer: Viewer,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let cron = query.get("cron").map(String::as_str).unwrap_or_default();
    let timezone = query.get("timezone").map(String::as_str).unwrap_or("UTC");
    let preview = preview(cron, timezone);
    Ok(render(StatusCode::OK, &PreviewFragment { preview }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> FormValues {
        FormValues {
            name: " nightly ".into(),
            url: "https://example.com/x".into(),
            headers: "Content-Type: application/json\n\nAuthorization: Bearer abc: def".into(),
            success_status: "200, 204".into(),
            ..FormValues::defaults()
        }
    }

    #[test]
    fn the_form_builds_the_api_spec() {
        let spec = spec_from_form(&values(), json!({})).expect("valid");
        assert_eq!(spec["name"], "nightly");
        assert_eq!(
            spec["schedule"],
            json!({"cron": "0 * * * *", "timezone": "UTC"})
        );
        assert_eq!(
            spec["request"]["headers"],
            json!({"Content-Type": "application/json", "Authorization": "Bearer abc: def"})
        );
        assert_eq!(spec["request"]["timeout_ms"], 30_000);
        assert_eq!(spec["request"]["body"], Value::Null);
        assert_eq!(spec["success"]["status"], json!([200, 204]));
        let spec: cronhook_core::JobSpec = serde_json::from_value(spec).expect("an API spec");
        assert_eq!(spec.retry.max_attempts, 3);
    }

    #[test]
    fn editing_keeps_what_the_form_does_not_show() {
        let base = json!({"alerts": {"after_consecutive_failures": 4}, "retry": {"jitter": false}});
        let spec = spec_from_form(&values(), base).expect("valid");
        assert_eq!(spec["alerts"]["after_consecutive_failures"], 4);
        assert_eq!(spec["retry"], json!({"jitter": false, "max_attempts": 3}));
    }

    #[test]
    fn bad_inputs_are_named() {
        let mut bad = values();
        bad.headers = "no colon here".into();
        bad.timeout = "soon".into();
        let errors = spec_from_form(&bad, json!({})).expect_err("refused");
        assert!(errors["headers"].contains("Line 1"));
        assert!(errors.contains_key("timeout"));
        assert_eq!(input_of("schedule.cron"), "cron");
        assert_eq!(input_of("request.headers.X-Key"), "headers");
        assert_eq!(input_of("alerts.channels[0]"), "");
    }
}
