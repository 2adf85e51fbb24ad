//! What an alert says: one set of words, rendered for email (subject, plain text, HTML), Slack
//! (Block Kit with a plain `text` fallback), Discord (`content` and an embed) and webhooks (a
//! JSON event).
//!
//! Written for someone woken at night: the job, what failed, the body, how long it has been
//! failing, when it runs next, and a link to the execution.

use chrono::{DateTime, SecondsFormat, Utc};
use cronhook_core::alerting::{AlertFacts, AlertKind, DisableReason};
use cronhook_store::Alert;
use serde_json::{Value, json};

/// Where links in alerts point: the dashboard's address, when the operator configured one.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub public_url: Option<String>,
}

impl Links {
    /// The dashboard page of an execution, or `None` without a public URL.
    pub fn execution(&self, execution_id: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{}/executions/{execution_id}", base.trim_end_matches('/')))
    }
}

/// What every channel type renders from.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    /// One line: what happened.
    pub headline: String,
    /// Label and value pairs, in order.
    pub details: Vec<(&'static str, String)>,
    pub body_excerpt: Option<String>,
    pub link: Option<String>,
    /// What to do next, or what happens next.
    pub advice: String,
    /// Said instead of a link when there is none.
    pub missing_link: Option<String>,
}

const NO_PUBLIC_URL: &str =
    "(no link: set CRONHOOK_PUBLIC_URL to the dashboard's address to get links in alerts)";

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `HTTP 500`, `timeout: no complete response within 30000 ms`, `HTTP 200, assertion_failed: …`.
pub fn what_failed(facts: &AlertFacts) -> String {
    match (facts.status_code, &facts.error_kind, &facts.error_message) {
        // The status alone says it when the only broken rule is the accepted statuses.
        (Some(status), _, Some(message))
            if message.contains("is not accepted by success.status") =>
        {
            format!("HTTP {status}")
        }
        (Some(status), Some(kind), Some(message)) => format!("HTTP {status}, {kind}: {message}"),
        (Some(status), _, _) => format!("HTTP {status}"),
        (None, Some(kind), Some(message)) => format!("{kind}: {message}"),
        (None, Some(kind), None) => kind.clone(),
        (None, None, _) => "no answer".to_owned(),
    }
}

/// The short form for subjects: `HTTP 500` or the error kind.
fn failure_word(facts: &AlertFacts) -> String {
    match (facts.status_code, &facts.error_kind) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(kind)) => kind.clone(),
        (None, None) => "no answer".to_owned(),
    }
}

fn plural(count: u32, one: &str, many: &str) -> String {
    if count == 1 {
        format!("{count} {one}")
    } else {
        format!("{count} {many}")
    }
}

/// Renders an alert.
pub fn render(alert: &Alert, links: &Links) -> Rendered {
    let facts = &alert.facts;
    let job = facts
        .job_name
        .clone()
        .unwrap_or_else(|| "(deleted job)".to_owned());
    let link = alert
        .execution_id
        .as_deref()
        .and_then(|execution_id| links.execution(execution_id));
    let missing_link =
        (alert.execution_id.is_some() && link.is_none()).then(|| NO_PUBLIC_URL.to_owned());
    let mut details: Vec<(&'static str, String)> = Vec::new();
    let next_run = facts
        .next_run_at
        .map(time)
        .unwrap_or_else(|| "none scheduled".to_owned());
    let since = facts.streak_started_at.map(time);
    let (subject, headline, advice) = match alert.kind {
        AlertKind::Failing => {
            details.push(("What failed", what_failed(facts)));
            details.push((
                "Streak",
                format!(
                    "{} in a row{}",
                    plural(facts.streak, "failed execution", "failed executions"),
                    since
                        .map(|at| format!(", failing since {at}"))
                        .unwrap_or_default()
                ),
            ));
            details.push(("Next run", next_run));
            (
                format!(
                    "[cronhook] FAILING: {job} ({} in a row, {})",
                    facts.streak,
                    failure_word(facts)
                ),
                format!(
                    "{job} is failing: {} in a row.",
                    plural(facts.streak, "failed execution", "failed executions")
                ),
                format!(
                    "This is the only alert for this streak; you will hear again when {job} recovers."
                ),
            )
        }
        AlertKind::Recovered => {
            details.push(("Now", format!("succeeded, {}", what_failed(facts))));
            details.push((
                "Streak that ended",
                format!(
                    "{}{}",
                    plural(facts.streak, "failed execution", "failed executions"),
                    since
                        .map(|at| format!(", failing since {at}"))
                        .unwrap_or_default()
                ),
            ));
            details.push(("Next run", next_run));
            (
                format!("[cronhook] RECOVERED: {job}"),
                format!(
                    "{job} has recovered: it succeeded after {} in a row.",
                    plural(facts.streak, "failed execution", "failed executions")
                ),
                "Nothing to do.".to_owned(),
            )
        }
        AlertKind::Disabled => {
            let why = match facts.disabled_because {
                Some(DisableReason::Gone) => {
                    "the target answered 410 Gone (it wants no more calls)".to_owned()
                }
                _ => format!(
                    "it failed {} in a row, reaching its auto_disable_after_failures limit",
                    plural(facts.streak, "time", "times")
                ),
            };
            details.push(("What failed", what_failed(facts)));
            details.push((
                "Streak",
                format!(
                    "{} in a row{}",
                    plural(facts.streak, "failed execution", "failed executions"),
                    since
                        .map(|at| format!(", failing since {at}"))
                        .unwrap_or_default()
                ),
            ));
            details.push(("Next run", "none: the job is paused".to_owned()));
            (
                format!("[cronhook] DISABLED: {job} ({})", failure_word(facts)),
                format!("{job} was paused by cronhook: {why}."),
                format!(
                    "It will not run again until someone resumes it (Resume on the dashboard, or POST /api/v1/jobs/{}/resume).",
                    alert.job_id.as_deref().unwrap_or("{id}")
                ),
            )
        }
        AlertKind::Test => {
            let channel = facts
                .channel_name
                .clone()
                .unwrap_or_else(|| alert.channel_id.clone());
            (
                format!("[cronhook] TEST: {channel}"),
                format!("This is a test alert from cronhook for the channel \"{channel}\"."),
                "If you can read this, the channel works.".to_owned(),
            )
        }
    };
    Rendered {
        subject,
        headline,
        details,
        // A successful answer's body tells the reader nothing.
        body_excerpt: facts
            .body_excerpt
            .clone()
            .filter(|_| alert.kind != AlertKind::Recovered),
        link,
        advice,
        missing_link,
    }
}

impl Rendered {
    /// The plain-text email part (and the webhook event's `text`).
    pub fn plain_text(&self) -> String {
        let mut text = format!("{}\n\n", self.headline);
        let width = self
            .details
            .iter()
            .map(|(label, _)| label.len())
            .max()
            .unwrap_or(0);
        for (label, value) in &self.details {
            text.push_str(&format!("{label:<width$}  {value}\n"));
        }
        if let Some(body) = &self.body_excerpt {
            text.push_str("\nResponse body (first 500 bytes):\n");
            for line in body.lines() {
                text.push_str("    ");
                text.push_str(line);
                text.push('\n');
            }
        }
        match (&self.link, &self.missing_link) {
            (Some(link), _) => text.push_str(&format!("\nExecution: {link}\n")),
            (None, Some(missing)) => text.push_str(&format!("\nExecution: {missing}\n")),
            (None, None) => {}
        }
        text.push_str(&format!("\n{}\n", self.advice));
        text
    }

    /// The HTML email part: the same words.
    pub fn html(&self) -> String {
        let mut html = String::from(
            "<!doctype html><html><body style=\"font-family: sans-serif; line-height: 1.4\">",
        );
        html.push_str(&format!(
            "<p><strong>{}</strong></p>",
            escape(&self.headline)
        ));
        if !self.details.is_empty() {
            html.push_str("<table cellpadding=\"4\">");
            for (label, value) in &self.details {
                html.push_str(&format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                    escape(label),
                    escape(value)
                ));
            }
            html.push_str("</table>");
        }
        if let Some(body) = &self.body_excerpt {
            html.push_str(&format!(
                "<p>Response body (first 500 bytes):</p><pre style=\"background:#f4f4f4;padding:8px;white-space:pre-wrap\">{}</pre>",
                escape(body)
            ));
        }
        match (&self.link, &self.missing_link) {
            (Some(link), _) => html.push_str(&format!(
                "<p><a href=\"{}\">Open the execution</a></p>",
                escape(link)
            )),
            (None, Some(missing)) => html.push_str(&format!("<p>{}</p>", escape(missing))),
            (None, None) => {}
        }
        html.push_str(&format!("<p>{}</p></body></html>", escape(&self.advice)));
        html
    }

    /// A Slack incoming-webhook message: Block Kit blocks, and `text` as the fallback that
    /// notifications and old clients show.
    pub fn slack(&self) -> Value {
        let mut fields = Vec::new();
        for (label, value) in &self.details {
            fields.push(
                json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", slack_escape(value))}),
            );
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": clip(&self.subject, 150)}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&self.headline)}}),
        ];
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        if let Some(body) = &self.body_excerpt {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Response body (first 500 bytes)*\n```{}```", slack_escape(body))}}));
        }
        let mut context = slack_escape(&self.advice);
        match (&self.link, &self.missing_link) {
            (Some(link), _) => blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{link}|Open the execution>")}})),
            (None, Some(missing)) => context = format!("{context} {}", slack_escape(missing)),
            (None, None) => {}
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
        json!({"text": self.plain_text(), "blocks": blocks})
    }

    /// A Discord webhook message: `content` (what notifications show) and one embed.
    pub fn discord(&self, kind: AlertKind) -> Value {
        let color = match kind {
            AlertKind::Failing => 0xd0_3b_3b,
            AlertKind::Disabled => 0x8b_00_00,
            AlertKind::Recovered => 0x2e_a0_43,
            AlertKind::Test => 0x3b_82_f6,
        };
        let mut fields: Vec<Value> = self
            .details
            .iter()
            .map(|(label, value)| json!({"name": label, "value": clip(value, 1000), "inline": false}))
            .collect();
        if let Some(body) = &self.body_excerpt {
            fields.push(json!({"name": "Response body (first 500 bytes)", "value": format!("```\n{}\n```", clip(body, 1000)), "inline": false}));
        }
        let mut description = self.headline.clone();
        if let Some(missing) = &self.missing_link {
            description = format!("{description}\n{missing}");
        }
        description = format!("{description}\n{}", self.advice);
        let mut embed = json!({
            "title": clip(&self.subject, 250),
            "description": clip(&description, 4000),
            "color": color,
            "fields": fields,
        });
        if let Some(link) = &self.link {
            embed["url"] = json!(link);
        }
        json!({"content": clip(&format!("{}\n{}", self.subject, self.headline), 2000), "embeds": [embed]})
    }
}

/// The JSON event a webhook channel receives.
pub fn webhook_event(alert: &Alert, rendered: &Rendered) -> Value {
    let facts = &alert.facts;
    json!({
        "type": format!("alert.{}", alert.kind.as_str()),
        "alert_id": alert.id,
        "kind": alert.kind.as_str(),
        "created_at": time(alert.created_at),
        "job": alert.job_id.as_ref().map(|id| json!({"id": id, "name": facts.job_name})),
        "execution_id": alert.execution_id,
        "execution_url": rendered.link,
        "failure": {
            "status_code": facts.status_code,
            "error_kind": facts.error_kind,
            "error_message": facts.error_message,
            "body_excerpt": facts.body_excerpt,
        },
        "streak": {
            "failures": facts.streak,
            "started_at": facts.streak_started_at.map(time),
        },
        "next_run_at": facts.next_run_at.map(time),
        "disabled_because": facts.disabled_because,
        "subject": rendered.subject,
        "text": rendered.plain_text(),
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Slack's three control characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(chars.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronhook_store::AlertStatus;

    fn alert(kind: AlertKind, facts: AlertFacts) -> Alert {
        let at = DateTime::parse_from_rfc3339("2026-11-27T02:00:03Z")
            .expect("instant")
            .with_timezone(&Utc);
        Alert {
            id: "alr_1".into(),
            workspace_id: "wsp_1".into(),
            job_id: Some("job_1".into()),
            execution_id: Some("exe_1".into()),
            channel_id: "chn_1".into(),
            kind,
            status: AlertStatus::Pending,
            attempts: 0,
            error: None,
            facts,
            created_at: at,
            next_attempt_at: Some(at),
            delivered_at: None,
        }
    }

    fn failing_facts() -> AlertFacts {
        AlertFacts {
            job_name: Some("payments-sync".into()),
            status_code: Some(500),
            body_excerpt: Some("{\"error\":\"db <down>\"}".into()),
            streak: 3,
            streak_started_at: Some(
                DateTime::parse_from_rfc3339("2026-11-27T01:58:00Z")
                    .expect("instant")
                    .with_timezone(&Utc),
            ),
            ..AlertFacts::default()
        }
    }

    #[test]
    fn a_failing_alert_says_it_all() {
        let links = Links {
            public_url: Some("https://cron.example.com/".into()),
        };
        let rendered = render(&alert(AlertKind::Failing, failing_facts()), &links);
        assert_eq!(
            rendered.subject,
            "[cronhook] FAILING: payments-sync (3 in a row, HTTP 500)"
        );
        let text = rendered.plain_text();
        assert!(text.contains("What failed  HTTP 500"), "{text}");
        assert!(
            text.contains("failing since 2026-11-27T01:58:00Z"),
            "{text}"
        );
        assert!(text.contains("Next run     none scheduled"), "{text}");
        assert!(
            text.contains("https://cron.example.com/executions/exe_1"),
            "{text}"
        );
        let html = rendered.html();
        assert!(html.contains("db &lt;down&gt;"), "{html}");
        let slack = rendered.slack();
        assert!(
            slack["text"]
                .as_str()
                .expect("text")
                .contains("payments-sync")
        );
        assert_eq!(slack["blocks"][0]["type"], "header");
        let discord = rendered.discord(AlertKind::Failing);
        assert!(
            discord["content"]
                .as_str()
                .expect("content")
                .contains("FAILING")
        );
        assert_eq!(
            discord["embeds"][0]["url"],
            "https://cron.example.com/executions/exe_1"
        );
    }

    #[test]
    fn without_a_public_url_the_message_says_so() {
        let rendered = render(
            &alert(AlertKind::Failing, failing_facts()),
            &Links::default(),
        );
        assert!(rendered.link.is_none());
        assert!(rendered.plain_text().contains("set CRONHOOK_PUBLIC_URL"));
    }

    #[test]
    fn errors_without_a_status_name_their_kind() {
        let facts = AlertFacts {
            status_code: None,
            error_kind: Some("timeout".into()),
            error_message: Some("no complete response within 30000 ms".into()),
            ..failing_facts()
        };
        let rendered = render(&alert(AlertKind::Failing, facts), &Links::default());
        assert_eq!(
            rendered.subject,
            "[cronhook] FAILING: payments-sync (3 in a row, timeout)"
        );
        assert!(
            rendered
                .plain_text()
                .contains("timeout: no complete response within 30000 ms")
        );
    }

    #[test]
    fn a_refused_status_is_said_once() {
        let facts = AlertFacts {
            error_kind: Some("assertion_failed".into()),
            error_message: Some("status 500 is not accepted by success.status \"2xx\"".into()),
            ..failing_facts()
        };
        assert_eq!(what_failed(&facts), "HTTP 500");
        let regex = AlertFacts {
            status_code: Some(200),
            error_kind: Some("assertion_failed".into()),
            error_message: Some("the body does not match success.body_regex".into()),
            ..failing_facts()
        };
        assert_eq!(
            what_failed(&regex),
            "HTTP 200, assertion_failed: the body does not match success.body_regex"
        );
    }

    #[test]
    fn recovery_and_disabled_subjects() {
        let recovered = render(
            &alert(AlertKind::Recovered, failing_facts()),
            &Links::default(),
        );
        assert_eq!(recovered.subject, "[cronhook] RECOVERED: payments-sync");
        let disabled = AlertFacts {
            disabled_because: Some(DisableReason::Gone),
            status_code: Some(410),
            ..failing_facts()
        };
        let disabled = render(&alert(AlertKind::Disabled, disabled), &Links::default());
        assert_eq!(
            disabled.subject,
            "[cronhook] DISABLED: payments-sync (HTTP 410)"
        );
        assert!(disabled.headline.contains("410 Gone"));
    }
}
