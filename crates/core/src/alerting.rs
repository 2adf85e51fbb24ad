//! When a job's failures become an alert: the streak rules, pure.
//!
//! A streak is the run of consecutive failed executions of one job. It is alerted once, when it
//! reaches the job's `alerts.after_consecutive_failures` (never once per run); the first success
//! after an alerted streak is a recovery notice (when `alerts.on_recovery`). A streak that reaches
//! `auto_disable_after_failures`, or a target that answers `410 Gone`, pauses the job, and that is
//! always said (alert kind `disabled`), whatever the threshold. Skipped and cancelled executions
//! are not outcomes: they neither extend nor end a streak (callers do not pass them here).
//!
//! This module also holds the channel definitions users write and the facts an alert carries, so
//! that the store, the API and the delivery worker agree on their shapes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AlertPolicy;

/// How many bytes of the failing response's body an alert quotes.
pub const ALERT_BODY_EXCERPT_BYTES: usize = 500;

/// A job's failure streak as stored with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streak {
    /// Consecutive failed executions, 0 after a success.
    pub failures: u32,
    /// When the streak's first failed execution finished.
    pub started_at: Option<DateTime<Utc>>,
    /// Whether this streak was alerted already (`failing` or `disabled`).
    pub alerted: bool,
}

/// How a finished execution came out, as far as alerting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// `gone` when the target answered `410 Gone` (it wants no more calls).
    Failed {
        gone: bool,
    },
}

/// The kind of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A streak reached the job's threshold.
    Failing,
    /// The first success after an alerted streak.
    Recovered,
    /// The job was paused: auto-disable, or the target answered `410 Gone`.
    Disabled,
    /// Sent on request, to try a channel.
    Test,
}

impl AlertKind {
    /// The kind's word, as in the API and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failing => "failing",
            AlertKind::Recovered => "recovered",
            AlertKind::Disabled => "disabled",
            AlertKind::Test => "test",
        }
    }
}

/// Why a job was paused on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisableReason {
    /// The streak reached `auto_disable_after_failures`.
    AutoDisable,
    /// The target answered `410 Gone`.
    Gone,
}

/// What to do after an execution finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The job's streak from now on.
    pub streak: Streak,
    /// The alert to raise, on every channel of the job.
    pub alert: Option<AlertKind>,
    /// Pause the job, for this reason.
    pub disable: Option<DisableReason>,
}

/// Applies one finished execution to a job's streak. `paused` says whether the job is paused
/// already (a manual run of a paused job disables nothing again); `at` is when the execution
/// finished.
pub fn on_finished(
    policy: &AlertPolicy,
    auto_disable_after_failures: Option<u32>,
    paused: bool,
    before: Streak,
    outcome: Outcome,
    at: DateTime<Utc>,
) -> Decision {
    match outcome {
        Outcome::Succeeded => Decision {
            streak: Streak::default(),
            alert: (before.alerted && policy.on_recovery).then_some(AlertKind::Recovered),
            disable: None,
        },
        Outcome::Failed { gone } => {
            let failures = before.failures.saturating_add(1);
            let started_at = before.started_at.or(Some(at));
            let disable = if paused {
                None
            } else if gone {
                Some(DisableReason::Gone)
            } else {
                auto_disable_after_failures
                    .filter(|&limit| limit > 0 && failures >= limit)
                    .map(|_| DisableReason::AutoDisable)
            };
            let alert = if disable.is_some() {
                Some(AlertKind::Disabled)
            } else if !before.alerted && failures >= policy.after_consecutive_failures.max(1) {
                Some(AlertKind::Failing)
            } else {
                None
            };
            Decision {
                streak: Streak {
                    failures,
                    started_at,
                    alerted: before.alerted || alert.is_some(),
                },
                alert,
                disable,
            }
        }
    }
}

/// Where an alert channel delivers, as a user defines it (`type` names the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelTarget {
    /// Email through the operator's SMTP server, to every address in `to`.
    Email { to: Vec<String> },
    /// A Slack incoming webhook; its URL is a credential.
    Slack { webhook_url: String },
    /// A JSON event POSTed to `url`, signed like job requests.
    Webhook { url: String },
    /// A Discord webhook; its URL is a credential.
    Discord { webhook_url: String },
}

impl ChannelTarget {
    /// The channel type's word (`email`, `slack`, `webhook`, `discord`).
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelTarget::Email { .. } => "email",
            ChannelTarget::Slack { .. } => "slack",
            ChannelTarget::Webhook { .. } => "webhook",
            ChannelTarget::Discord { .. } => "discord",
        }
    }

    /// The URL the channel posts to and the field that holds it, for HTTP channels.
    pub fn url(&self) -> Option<(&'static str, &str)> {
        match self {
            ChannelTarget::Email { .. } => None,
            ChannelTarget::Slack { webhook_url } | ChannelTarget::Discord { webhook_url } => {
                Some(("webhook_url", webhook_url))
            }
            ChannelTarget::Webhook { url } => Some(("url", url)),
        }
    }

    /// Whether the URL is a credential (whoever knows it can post): shown masked.
    pub fn url_is_secret(&self) -> bool {
        matches!(
            self,
            ChannelTarget::Slack { .. } | ChannelTarget::Discord { .. }
        )
    }
}

/// The most recipients of one email channel.
pub const MAX_EMAIL_RECIPIENTS: usize = 50;

/// Checks a channel as a user defined it: its name, its addresses, and (for HTTP channels) that
/// its URL passes the same SSRF guard as a job's. Field names are the API's (`name`, `to[1]`,
/// `webhook_url`, `url`).
pub fn validate_channel(
    name: &str,
    target: &ChannelTarget,
    targets: &crate::net::TargetPolicy,
) -> Result<(), crate::FieldError> {
    use crate::FieldError;
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed != name || name.chars().count() > 100 {
        return Err(FieldError::new(
            "name",
            "must be 1 to 100 characters, without leading or trailing spaces",
        ));
    }
    match target {
        ChannelTarget::Email { to } => {
            if to.is_empty() {
                return Err(FieldError::new("to", "must name at least one address"));
            }
            if to.len() > MAX_EMAIL_RECIPIENTS {
                return Err(FieldError::new(
                    "to",
                    format!("may name at most {MAX_EMAIL_RECIPIENTS} addresses"),
                ));
            }
            for (index, address) in to.iter().enumerate() {
                if !is_plain_email_address(address) {
                    return Err(FieldError::new(
                        format!("to[{index}]"),
                        format!("`{address}` is not an email address like ops@example.com"),
                    ));
                }
            }
        }
        ChannelTarget::Slack { webhook_url } | ChannelTarget::Discord { webhook_url } => {
            crate::validate::validate_target_url(webhook_url, "webhook_url", targets)?;
        }
        ChannelTarget::Webhook { url } => {
            crate::validate::validate_target_url(url, "url", targets)?;
        }
    }
    Ok(())
}

/// A bare address `local@domain`: no display name, no spaces, no characters that would let it
/// smuggle another header or recipient.
fn is_plain_email_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && address.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')' | '\\')
        })
        && !domain.contains('@')
}

/// What an alert says, captured when it is raised (so a later edit or run changes nothing in a
/// message already on its way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AlertFacts {
    pub job_name: Option<String>,
    /// The status code of the last attempt, when the target answered.
    pub status_code: Option<u16>,
    /// The error kind of the last attempt (`timeout`, `connect`, `assertion_failed`...).
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// The first [`ALERT_BODY_EXCERPT_BYTES`] bytes of the response body.
    pub body_excerpt: Option<String>,
    /// Consecutive failed executions, counting the alerted one (for `recovered`: the streak that
    /// ended).
    pub streak: u32,
    pub streak_started_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// Set on `disabled` alerts.
    pub disabled_because: Option<DisableReason>,
    /// The channel's name, on `test` alerts.
    pub channel_name: Option<String>,
}

impl AlertFacts {
    /// The facts of an alert that `decision` raised for the execution whose last attempt is
    /// `attempt`; `before` is the streak before it, `next_run_at` the job's next occurrence.
    pub fn for_decision(
        job_name: &str,
        before: Streak,
        decision: &Decision,
        attempt: &crate::Attempt,
        next_run_at: Option<DateTime<Utc>>,
    ) -> AlertFacts {
        let recovered = decision.alert == Some(AlertKind::Recovered);
        let (streak, streak_started_at) = if recovered {
            (before.failures, before.started_at)
        } else {
            (decision.streak.failures, decision.streak.started_at)
        };
        AlertFacts {
            job_name: Some(job_name.to_owned()),
            status_code: attempt.status_code,
            error_kind: attempt.error.as_ref().and_then(|error| {
                match serde_json::to_value(error.kind) {
                    Ok(serde_json::Value::String(kind)) => Some(kind),
                    _ => None,
                }
            }),
            error_message: attempt.error.as_ref().map(|error| error.message.clone()),
            body_excerpt: attempt
                .response_body
                .as_deref()
                .filter(|body| !body.is_empty())
                .map(|body| excerpt(body, ALERT_BODY_EXCERPT_BYTES).0),
            streak,
            streak_started_at,
            next_run_at: if decision.disable.is_some() {
                None
            } else {
                next_run_at
            },
            disabled_because: decision.disable,
            channel_name: None,
        }
    }
}

/// The first `limit` bytes of `text`, cut at a character boundary, and whether anything was cut.
pub fn excerpt(text: &str, limit: usize) -> (String, bool) {
    if text.len() <= limit {
        return (text.to_owned(), false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(after: u32, on_recovery: bool) -> AlertPolicy {
        AlertPolicy {
            after_consecutive_failures: after,
            on_recovery,
            channels: Vec::new(),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("instant")
    }

    /// Runs outcomes through the rules, returning the alerts raised (by index) and the streak.
    fn run(
        policy: &AlertPolicy,
        auto_disable: Option<u32>,
        outcomes: &[Outcome],
    ) -> (Vec<(usize, AlertKind)>, Vec<usize>, Streak) {
        let mut streak = Streak::default();
        let mut paused = false;
        let mut alerts = Vec::new();
        let mut disabled = Vec::new();
        for (index, outcome) in outcomes.iter().enumerate() {
            let decision = on_finished(
                policy,
                auto_disable,
                paused,
                streak,
                *outcome,
                at(index as i64),
            );
            if let Some(kind) = decision.alert {
                alerts.push((index, kind));
            }
            if decision.disable.is_some() {
                paused = true;
                disabled.push(index);
            }
            streak = decision.streak;
        }
        (alerts, disabled, streak)
    }

    const FAIL: Outcome = Outcome::Failed { gone: false };
    const OK: Outcome = Outcome::Succeeded;

    #[test]
    fn a_streak_is_alerted_once_when_it_reaches_the_threshold() {
        let (alerts, disabled, streak) = run(&policy(3, true), None, &[FAIL; 7]);
        assert_eq!(alerts, vec![(2, AlertKind::Failing)]);
        assert!(disabled.is_empty());
        assert_eq!(streak.failures, 7);
        assert_eq!(streak.started_at, Some(at(0)));
        assert!(streak.alerted);
    }

    #[test]
    fn a_success_before_the_threshold_resets_the_streak_silently() {
        let (alerts, _, streak) = run(&policy(3, true), None, &[FAIL, FAIL, OK, FAIL, FAIL]);
        assert!(alerts.is_empty());
        assert_eq!(streak.failures, 2);
        assert_eq!(streak.started_at, Some(at(3)));
    }

    #[test]
    fn the_first_success_after_an_alerted_streak_is_a_recovery() {
        let (alerts, _, streak) = run(&policy(2, true), None, &[FAIL, FAIL, FAIL, OK, OK]);
        assert_eq!(
            alerts,
            vec![(1, AlertKind::Failing), (3, AlertKind::Recovered)]
        );
        assert_eq!(streak, Streak::default());
        // And a new streak is alerted again.
        let (alerts, _, _) = run(&policy(1, true), None, &[FAIL, OK, FAIL, FAIL]);
        assert_eq!(
            alerts,
            vec![
                (0, AlertKind::Failing),
                (1, AlertKind::Recovered),
                (2, AlertKind::Failing)
            ]
        );
    }

    #[test]
    fn no_recovery_notice_when_turned_off() {
        let (alerts, _, _) = run(&policy(1, false), None, &[FAIL, OK]);
        assert_eq!(alerts, vec![(0, AlertKind::Failing)]);
    }

    #[test]
    fn auto_disable_pauses_and_says_so_once() {
        let (alerts, disabled, _) = run(&policy(2, true), Some(4), &[FAIL; 6]);
        // Failing at 2, disabled at 4; the job is paused after, so runs 5 and 6 (manual runs)
        // disable nothing again.
        assert_eq!(
            alerts,
            vec![(1, AlertKind::Failing), (3, AlertKind::Disabled)]
        );
        assert_eq!(disabled, vec![3]);
    }

    #[test]
    fn disabling_is_said_even_below_the_alert_threshold() {
        let (alerts, disabled, _) = run(&policy(10, true), Some(2), &[FAIL, FAIL, OK]);
        assert_eq!(
            alerts,
            vec![(1, AlertKind::Disabled), (2, AlertKind::Recovered)]
        );
        assert_eq!(disabled, vec![1]);
    }

    #[test]
    fn gone_pauses_at_once_with_one_alert() {
        let (alerts, disabled, streak) =
            run(&policy(1, true), None, &[Outcome::Failed { gone: true }]);
        assert_eq!(alerts, vec![(0, AlertKind::Disabled)]);
        assert_eq!(disabled, vec![0]);
        assert_eq!(streak.failures, 1);
    }

    #[test]
    fn a_zero_threshold_counts_as_one() {
        let (alerts, _, _) = run(&policy(0, true), None, &[FAIL, FAIL]);
        assert_eq!(alerts, vec![(0, AlertKind::Failing)]);
    }

    #[test]
    fn channels_read_their_documented_forms() {
        let email: ChannelTarget =
            serde_json::from_str(r#"{"type":"email","to":["ops@example.com"]}"#).expect("email");
        assert_eq!(
            email,
            ChannelTarget::Email {
                to: vec!["ops@example.com".into()]
            }
        );
        let slack: ChannelTarget = serde_json::from_str(
            r#"{"type":"slack","webhook_url":"https://hooks.slack.com/services/x"}"#,
        )
        .expect("slack");
        assert!(slack.url_is_secret());
        assert_eq!(
            slack.url(),
            Some(("webhook_url", "https://hooks.slack.com/services/x"))
        );
        assert!(serde_json::from_str::<ChannelTarget>(r#"{"type":"pager"}"#).is_err());
        assert!(
            serde_json::from_str::<ChannelTarget>(r#"{"type":"webhook","url":"x","extra":1}"#)
                .is_err()
        );
    }

    #[test]
    fn channels_are_validated_with_field_names() {
        let open = crate::net::TargetPolicy::default();
        let email = |to: &[&str]| ChannelTarget::Email {
            to: to.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert!(validate_channel("ops", &email(&["ops@example.com"]), &open).is_ok());
        let error = validate_channel("ops", &email(&["ops@example.com", "nope"]), &open)
            .expect_err("refused");
        assert_eq!(error.field, "to[1]");
        let error =
            validate_channel("ops", &email(&["a@b.com, c@d.com"]), &open).expect_err("refused");
        assert_eq!(error.field, "to[0]");
        assert_eq!(
            validate_channel("ops", &email(&[]), &open)
                .expect_err("refused")
                .field,
            "to"
        );
        assert_eq!(
            validate_channel(" ", &email(&["a@b.co"]), &open)
                .expect_err("refused")
                .field,
            "name"
        );
        let private = ChannelTarget::Slack {
            webhook_url: "http://127.0.0.1:9/hook".into(),
        };
        assert_eq!(
            validate_channel("s", &private, &open)
                .expect_err("private refused")
                .field,
            "webhook_url"
        );
        let allowed = crate::net::TargetPolicy {
            allow_private: true,
            ..Default::default()
        };
        assert!(validate_channel("s", &private, &allowed).is_ok());
        let webhook = ChannelTarget::Webhook {
            url: "ftp://example.com/x".into(),
        };
        assert_eq!(
            validate_channel("w", &webhook, &open)
                .expect_err("scheme")
                .field,
            "url"
        );
    }

    #[test]
    fn excerpts_cut_at_character_boundaries() {
        assert_eq!(excerpt("short", 500), ("short".to_owned(), false));
        let text = "é".repeat(300); // 600 bytes
        let (cut, truncated) = excerpt(&text, 500);
        assert!(truncated);
        assert_eq!(cut.len(), 500);
        let (cut, _) = excerpt("aé", 2);
        assert_eq!(cut, "a");
    }
}
