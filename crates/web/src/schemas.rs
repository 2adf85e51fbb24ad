//! The OpenAPI schemas of the API's answers that are built as JSON rather than serialized from a
//! type (`render.rs` writes them). These types are never constructed: they describe, field for
//! field, what the renderers write, and `tests/openapi.rs` checks real answers against them.
//! The writable parts (`JobSpec`, `Attempt`, ...) are cronhook-core's own types, whose schemas come
//! from its `utoipa` feature.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use cronhook_core::{
    AlertPolicy, Attempt, Concurrency, ExecutionStatus, Misfire, RequestSpec, RetryPolicy,
    ScheduleSpec, SuccessRule, Trigger,
};
use utoipa::{IntoParams, ToSchema};

/// A job: its writable fields (secret header values masked: `••••` and the last 4 characters)
/// and the read-only fields the server sets.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// `job_...`
    #[schema(example = "job_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Unique within the workspace.
    #[schema(example = "nightly-report")]
    pub name: String,
    pub schedule: ScheduleSpec,
    pub request: RequestSpec,
    pub retry: RetryPolicy,
    pub success: SuccessRule,
    pub concurrency: Concurrency,
    pub misfire: Misfire,
    pub alerts: AlertPolicy,
    #[schema(required = true)]
    pub auto_disable_after_failures: Option<u32>,
    /// Keep at most this many finished executions (the newest); null keeps what the retention
    /// period keeps.
    #[schema(required = true)]
    pub keep_last: Option<u32>,
    pub paused: bool,
    /// The schedule in words, such as "At 03:00, every day".
    #[schema(required = true)]
    pub schedule_description: Option<String>,
    /// The next occurrence; null when paused or when a one-off time has fired.
    #[schema(required = true)]
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A JSON merge patch (RFC 7396) of a job's writable fields: members present replace, `null`
/// resets a field to its default, objects merge. The result is validated as a whole before
/// anything changes. Read-only fields copied from a job read are ignored.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct JobPatch(serde_json::Value);

/// A page of jobs.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobList {
    pub data: Vec<Job>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One occurrence of a job (or a manual run or replay) with its attempts.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// `exe_...`; also the `webhook-id` header of every attempt.
    #[schema(example = "exe_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b")]
    pub id: String,
    pub job_id: String,
    /// The occurrence this execution is for (for manual runs and replays, when it was asked for).
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    pub status: ExecutionStatus,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub duration_ms: Option<u64>,
    pub attempts: Vec<Attempt>,
}

/// A page of executions, newest first (by scheduled instant).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionList {
    pub data: Vec<Execution>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The next fire times of a cron expression.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePreview {
    /// The expression in words.
    #[schema(example = "At 03:00, every day")]
    pub description: String,
    /// The IANA time zone the expression is read in.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// The next fire times, RFC 3339 UTC.
    pub next: Vec<DateTime<Utc>>,
    /// The same instants in the schedule's time zone, RFC 3339 with their offset.
    pub next_local: Vec<String>,
}

/// The caller's workspace and its webhook signing secret.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// `wsp_...`
    pub id: String,
    pub slug: String,
    /// The Standard Webhooks signing secret, `whsec_...` (base64).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub signing_secret: String,
    /// The secret before the last rotation; it still signs for 24 hours after.
    #[schema(required = true)]
    pub previous_signing_secret: Option<String>,
    #[schema(required = true)]
    pub signing_secret_rotated_at: Option<DateTime<Utc>>,
}

/// A probe's answer.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: String,
}

/// An error (RFC 9457 problem details), served as `application/problem+json`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Always `about:blank`: `title` is the HTTP reason phrase.
    #[schema(example = "about:blank")]
    #[serde(rename = "type")]
    pub r#type: String,
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    /// What is wrong, naming the field.
    #[schema(example = "request.url: relative URL without a base")]
    pub detail: String,
    /// A stable, machine-readable code: `bad_request`, `invalid_parameter`,
    /// `validation_failed`, `unauthorized`, `not_found`, `method_not_allowed`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `unavailable`, `internal`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// The field (a JSON path into the body, or a query parameter) that is wrong, when one is.
    #[schema(example = "request.url")]
    pub field: Option<String>,
    /// On 422 answers: each field that is wrong and why.
    pub errors: Option<Vec<FieldProblem>>,
}

/// One wrong field of a 422 answer.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// List pagination.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, unchanged.
    pub cursor: Option<String>,
}

/// Filters of a job's execution history.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExecutionQuery {
    /// Only executions in this status.
    #[param(inline)]
    pub status: Option<ExecutionStatus>,
}

/// What to preview.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// A cron expression: 5 fields, or 6 with seconds first; `L`, `W`, `#`, names, `@daily`...,
    /// `@every 5m`, `H`.
    #[param(example = "0 3 * * *")]
    pub cron: String,
    /// An IANA time zone (default `UTC`).
    #[param(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// How many fire times, 1 to 100 (default 5).
    #[param(minimum = 1, maximum = 100)]
    pub count: Option<u32>,
    /// List fire times after this instant (RFC 3339; default now).
    pub from: Option<DateTime<Utc>>,
}

/// The `{id}` of a job.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobId {
    /// The job's id, `job_...`.
    pub id: String,
}

/// The `{id}` of an execution.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExecutionId {
    /// The execution's id, `exe_...`.
    pub id: String,
}

/// One `cronhook serve` process.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The id it holds leases under: its name and a per-start suffix.
    pub id: String,
    /// `--node-id`, or the host name.
    pub name: String,
    /// Any of `api`, `scheduler`, `executor`.
    pub roles: Vec<String>,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat_at: DateTime<Utc>,
    /// Heard from in the last 15 seconds.
    pub alive: bool,
}

/// The nodes heard from in the last hour, most recently heard first.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeList {
    pub data: Vec<Node>,
}
