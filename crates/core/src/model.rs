//! The job, execution and attempt types, in the shapes the contract gives them.
//!
//! `JobSpec` is what a user writes (every field with a default may be left out); `Job` is a stored
//! spec with its identity and schedule state. Serde forms here are the API's forms.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleSpec;

/// Everything a user defines about a job: the writable fields of the API object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    pub schedule: ScheduleSpec,
    pub request: RequestSpec,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub success: SuccessRule,
    #[serde(default)]
    pub concurrency: Concurrency,
    #[serde(default)]
    pub misfire: Misfire,
    #[serde(default)]
    pub alerts: AlertPolicy,
    #[serde(default)]
    pub auto_disable_after_failures: Option<u32>,
    /// Keep at most this many finished executions of the job (the newest); `None` keeps what
    /// the operator's retention by age keeps.
    #[serde(default)]
    pub keep_last: Option<u32>,
    #[serde(default)]
    pub paused: bool,
}

/// The HTTP request a job sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub follow_redirects: bool,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// How failed attempts are retried. `max_attempts` counts the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay_ms: 1_000,
            max_delay_ms: 600_000,
            jitter: true,
        }
    }
}

/// What makes a response count as a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SuccessRule {
    pub status: StatusRule,
    pub body_regex: Option<String>,
    pub max_duration_ms: Option<u64>,
}

/// Accepted status codes: classes such as `"2xx,3xx"`, or a list of codes such as `[200, 204]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum StatusRule {
    Classes(String),
    Codes(Vec<u16>),
}

impl Default for StatusRule {
    fn default() -> Self {
        StatusRule::Classes("2xx".to_owned())
    }
}

impl StatusRule {
    /// The classes (1 to 5) named by a `"2xx,3xx"` rule, or the reason it is malformed.
    pub fn parse_classes(text: &str) -> Result<Vec<u16>, String> {
        text.split(',')
            .map(|part| {
                status_class(part).ok_or_else(|| {
                    format!(
                        "`{}` is not a status class; write classes like \"2xx\" or \"2xx,3xx\", or a list of codes like [200, 204]",
                        part.trim().to_ascii_lowercase()
                    )
                })
            })
            .collect()
    }

    /// Whether `status` is accepted. A malformed rule accepts nothing (validation refuses it first).
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            // Without collecting the classes: every attempt is judged, twice.
            StatusRule::Classes(text) => {
                let mut accepted = false;
                for part in text.split(',') {
                    match status_class(part) {
                        Some(class) => accepted |= class == status / 100,
                        None => return false,
                    }
                }
                accepted
            }
            StatusRule::Codes(codes) => codes.contains(&status),
        }
    }
}

/// The class (1 to 5) a part of a `"2xx,3xx"` rule names, such as ` 2XX `.
fn status_class(part: &str) -> Option<u16> {
    match part.trim().as_bytes() {
        [digit @ b'1'..=b'5', x1, x2]
            if x1.eq_ignore_ascii_case(&b'x') && x2.eq_ignore_ascii_case(&b'x') =>
        {
            Some(u16::from(digit - b'0'))
        }
        _ => None,
    }
}

/// What happens when an occurrence comes while the previous execution still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    #[default]
    Allow,
    Forbid,
    Replace,
}

/// What happens to occurrences missed while cronhook was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    Skip,
    #[default]
    FireOnce,
    FireAll,
}

/// Who hears about failures, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    pub after_consecutive_failures: u32,
    pub on_recovery: bool,
    pub channels: Vec<String>,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            after_consecutive_failures: 1,
            on_recovery: true,
            channels: Vec::new(),
        }
    }
}

/// A stored job: its spec, identity and schedule state.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub workspace_id: String,
    /// Shared: the scheduler hands the same spec to every execution of a job until it changes,
    /// instead of a deep copy per fire. Edit it with `Arc::make_mut`.
    pub spec: Arc<JobSpec>,
    /// The next occurrence still to be materialized; `None` when nothing is left to fire.
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why an execution exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    Catchup,
    Replay,
}

/// Where an execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl ExecutionStatus {
    /// Whether nothing more will happen to an execution in this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Skipped
                | ExecutionStatus::Cancelled
        )
    }
}

/// Why an attempt got no valid response, or why its response was judged a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Timeout,
    Connect,
    Dns,
    Tls,
    BlockedTarget,
    TooManyRedirects,
    AssertionFailed,
    Cancelled,
    Interrupted,
}

/// The error of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AttemptError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Where the time of one attempt went, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Timing {
    pub dns_ms: Option<u64>,
    pub connect_ms: Option<u64>,
    pub tls_ms: Option<u64>,
    pub ttfb_ms: Option<u64>,
    pub total_ms: u64,
}

/// One HTTP attempt of an execution, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<AttemptError>,
    pub response_headers: BTreeMap<String, String>,
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    /// The `Location` a 3xx answer pointed to, when redirects were not followed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub redirect_location: Option<String>,
    pub timing: Timing,
}

/// One occurrence of a job (or a manual run), with its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub id: String,
    pub workspace_id: String,
    pub job_id: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    pub status: ExecutionStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub attempts: Vec<Attempt>,
}

/// The largest response body kept per attempt; the rest is cut and flagged.
pub const MAX_STORED_RESPONSE_BODY: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rules_accept_what_they_name() {
        let classes = StatusRule::Classes("2xx,3xx".into());
        assert!(classes.accepts(200));
        assert!(classes.accepts(302));
        assert!(!classes.accepts(404));
        let codes = StatusRule::Codes(vec![200, 204]);
        assert!(codes.accepts(204));
        assert!(!codes.accepts(201));
        assert!(StatusRule::parse_classes("2xx, 6xx").is_err());
        assert_eq!(StatusRule::parse_classes(" 2XX,4xx "), Ok(vec![2, 4]));
        let spaced = StatusRule::Classes(" 2XX, 4xx".into());
        assert!(spaced.accepts(204));
        assert!(spaced.accepts(404));
        assert!(!spaced.accepts(500));
        // A malformed rule accepts nothing, even a status one of its parts names.
        assert!(!StatusRule::Classes("2xx,6xx".into()).accepts(200));
        assert!(!StatusRule::Classes("2xx,".into()).accepts(200));
    }

    #[test]
    fn a_minimal_job_takes_the_contract_defaults() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "name": "n",
            "schedule": {"cron": "* * * * *"},
            "request": {"url": "https://example.com/"}
        }))
        .expect("minimal job parses");
        assert_eq!(spec.request.method, "GET");
        assert_eq!(spec.request.timeout_ms, 30_000);
        assert_eq!(spec.retry, RetryPolicy::default());
        assert_eq!(spec.success.status, StatusRule::Classes("2xx".into()));
        assert_eq!(spec.concurrency, Concurrency::Allow);
        assert_eq!(spec.misfire, Misfire::FireOnce);
        assert_eq!(spec.alerts.after_consecutive_failures, 1);
        assert!(!spec.paused);
    }
}
