//! The executor's metrics, through the `metrics` facade (a no-op until the binary installs a
//! recorder): executions by final status and trigger, attempts by outcome, attempt duration and
//! fire lag histograms, requests in flight and executions waiting for a slot.

use chrono::{DateTime, Utc};
use cronhook_core::{Attempt, ErrorKind, ExecutionStatus, StatusRule, Trigger};
use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

pub const EXECUTIONS_TOTAL: &str = "cronhook_executions_total";
pub const ATTEMPTS_TOTAL: &str = "cronhook_attempts_total";
pub const ATTEMPT_DURATION_SECONDS: &str = "cronhook_attempt_duration_seconds";
pub const FIRE_LAG_SECONDS: &str = "cronhook_fire_lag_seconds";
pub const IN_FLIGHT_REQUESTS: &str = "cronhook_executor_in_flight_requests";
pub const QUEUE_DEPTH: &str = "cronhook_executor_queue_depth";

/// Registers the help text of the executor's metrics with the installed recorder.
pub fn describe_metrics() {
    describe_counter!(
        EXECUTIONS_TOTAL,
        "Executions that reached a final status on this node, by status and trigger."
    );
    describe_counter!(
        ATTEMPTS_TOTAL,
        "HTTP attempts by outcome: success, http_error (a status the job does not accept), or the error kind."
    );
    describe_histogram!(
        ATTEMPT_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of HTTP attempts, from sending the request to the end of the response body."
    );
    describe_histogram!(
        FIRE_LAG_SECONDS,
        Unit::Seconds,
        "Time from an occurrence's scheduled instant to the sending of its first attempt (triggers schedule and catchup)."
    );
    describe_gauge!(
        IN_FLIGHT_REQUESTS,
        "HTTP requests this node's executor has in flight."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Executions held by this node's executor waiting for a free request slot."
    );
}

pub fn trigger_label(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Schedule => "schedule",
        Trigger::Manual => "manual",
        Trigger::Catchup => "catchup",
        Trigger::Replay => "replay",
    }
}

pub fn status_label(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Queued => "queued",
        ExecutionStatus::Running => "running",
        ExecutionStatus::Retrying => "retrying",
        ExecutionStatus::Succeeded => "succeeded",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::Skipped => "skipped",
        ExecutionStatus::Cancelled => "cancelled",
    }
}

pub fn error_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Timeout => "timeout",
        ErrorKind::Connect => "connect",
        ErrorKind::Dns => "dns",
        ErrorKind::Tls => "tls",
        ErrorKind::BlockedTarget => "blocked_target",
        ErrorKind::TooManyRedirects => "too_many_redirects",
        ErrorKind::AssertionFailed => "assertion_failed",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::Interrupted => "interrupted",
    }
}

/// An attempt's outcome label: `success`; `http_error` for an answer whose status the job does
/// not accept (or a 410 Gone, which fails the execution); otherwise the error kind.
pub fn outcome_label(attempt: &Attempt, accepted: &StatusRule) -> &'static str {
    match (&attempt.error, attempt.status_code) {
        (None, Some(410)) => "http_error",
        (None, _) => "success",
        (Some(error), Some(status))
            if error.kind == ErrorKind::AssertionFailed && !accepted.accepts(status) =>
        {
            "http_error"
        }
        (Some(error), _) => error_label(error.kind),
    }
}

/// Every attempt outcome label [`outcome_label`] gives.
const OUTCOMES: [&str; 11] = [
    "success",
    "http_error",
    "timeout",
    "connect",
    "dns",
    "tls",
    "blocked_target",
    "too_many_redirects",
    "assertion_failed",
    "cancelled",
    "interrupted",
];

/// The executor's metric handles, registered once with the recorder installed when the
/// executor is made: looking a metric up by name and labels on every request was ~2.5 % of a
/// burst's CPU. Executions by status and trigger (one per execution) are still looked up.
pub(crate) struct Meters {
    attempts: [(&'static str, Counter); OUTCOMES.len()],
    attempt_duration: Histogram,
    fire_lag: Histogram,
    in_flight: Gauge,
    queued: Gauge,
}

impl Meters {
    /// Registers the handles, and shows the gauges at zero from the start, before any work.
    pub(crate) fn register() -> Self {
        let meters = Self {
            attempts: OUTCOMES
                .map(|outcome| (outcome, counter!(ATTEMPTS_TOTAL, "outcome" => outcome))),
            attempt_duration: histogram!(ATTEMPT_DURATION_SECONDS),
            fire_lag: histogram!(FIRE_LAG_SECONDS),
            in_flight: gauge!(IN_FLIGHT_REQUESTS),
            queued: gauge!(QUEUE_DEPTH),
        };
        meters.in_flight.increment(0.0);
        meters.queued.increment(0.0);
        meters
    }

    fn count_attempt(&self, outcome: &'static str) {
        match self.attempts.iter().find(|(label, _)| *label == outcome) {
            Some((_, counter)) => counter.increment(1),
            None => counter!(ATTEMPTS_TOTAL, "outcome" => outcome).increment(1),
        }
    }

    /// Counts an attempt that was sent, with its duration.
    pub(crate) fn attempt_sent(&self, attempt: &Attempt, accepted: &StatusRule) {
        self.count_attempt(outcome_label(attempt, accepted));
        self.attempt_duration
            .record(attempt.duration_ms as f64 / 1000.0);
    }

    /// Counts an attempt that got no answer of its own: interrupted by a node that stopped, or
    /// cut by a newer occurrence (the `replace` overlap policy). No duration is recorded for it.
    pub(crate) fn attempt_without_answer(&self, kind: ErrorKind) {
        self.count_attempt(error_label(kind));
    }

    /// Records how late the first attempt of a scheduled occurrence was sent.
    pub(crate) fn first_attempt_sent(
        &self,
        trigger: Trigger,
        scheduled_for: DateTime<Utc>,
        sent_at: DateTime<Utc>,
    ) {
        if matches!(trigger, Trigger::Schedule | Trigger::Catchup) {
            let lag = (sent_at - scheduled_for)
                .num_microseconds()
                .unwrap_or(i64::MAX);
            self.fire_lag.record((lag.max(0) as f64) / 1e6);
        }
    }

    /// A request in flight while the guard lives.
    pub(crate) fn in_flight(&self) -> GaugeGuard<'_> {
        GaugeGuard::enter(&self.in_flight)
    }

    /// An execution waiting for a slot while the guard lives.
    pub(crate) fn queued(&self) -> GaugeGuard<'_> {
        GaugeGuard::enter(&self.queued)
    }
}

/// Counts an execution that reached a final status here.
pub fn execution_finished(trigger: Trigger, status: ExecutionStatus) {
    counter!(
        EXECUTIONS_TOTAL,
        "status" => status_label(status),
        "trigger" => trigger_label(trigger)
    )
    .increment(1);
}

/// Adds one to a gauge while alive.
pub(crate) struct GaugeGuard<'a>(&'a Gauge);

impl<'a> GaugeGuard<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronhook_core::{AttemptError, Timing};

    fn attempt(status: Option<u16>, kind: Option<ErrorKind>) -> Attempt {
        Attempt {
            number: 1,
            started_at: Utc::now(),
            duration_ms: 5,
            status_code: status,
            error: kind.map(|kind| AttemptError {
                kind,
                message: String::new(),
            }),
            response_headers: Default::default(),
            response_body: None,
            response_body_truncated: false,
            redirect_location: None,
            timing: Timing::default(),
        }
    }

    #[test]
    fn outcomes_name_success_http_errors_and_error_kinds() {
        let rule = StatusRule::default();
        assert_eq!(outcome_label(&attempt(Some(200), None), &rule), "success");
        assert_eq!(
            outcome_label(&attempt(Some(503), Some(ErrorKind::AssertionFailed)), &rule),
            "http_error"
        );
        // A body or duration rule broken by an accepted status is an assertion failure.
        assert_eq!(
            outcome_label(&attempt(Some(200), Some(ErrorKind::AssertionFailed)), &rule),
            "assertion_failed"
        );
        assert_eq!(
            outcome_label(&attempt(None, Some(ErrorKind::BlockedTarget)), &rule),
            "blocked_target"
        );
        assert_eq!(
            outcome_label(&attempt(None, Some(ErrorKind::TooManyRedirects)), &rule),
            "too_many_redirects"
        );
    }

    #[test]
    fn every_outcome_label_has_a_registered_handle() {
        let rule = StatusRule::default();
        let kinds = [
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Dns,
            ErrorKind::Tls,
            ErrorKind::BlockedTarget,
            ErrorKind::TooManyRedirects,
            ErrorKind::AssertionFailed,
            ErrorKind::Cancelled,
            ErrorKind::Interrupted,
        ];
        let mut labels: Vec<&str> = kinds.iter().map(|kind| error_label(*kind)).collect();
        labels.push(outcome_label(&attempt(Some(200), None), &rule));
        labels.push(outcome_label(&attempt(Some(410), None), &rule));
        for label in labels {
            assert!(OUTCOMES.contains(&label), "{label} has no handle");
        }
    }

    #[test]
    fn labels_match_the_api_forms() {
        for status in [ExecutionStatus::Succeeded, ExecutionStatus::Cancelled] {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status_label(status)))
            );
        }
        assert_eq!(
            serde_json::to_value(Trigger::Catchup).ok(),
            Some(serde_json::Value::from(trigger_label(Trigger::Catchup)))
        );
        assert_eq!(
            serde_json::to_value(ErrorKind::BlockedTarget).ok(),
            Some(serde_json::Value::from(error_label(
                ErrorKind::BlockedTarget
            )))
        );
    }
}
