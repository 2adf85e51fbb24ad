//! Validation of what users write, with errors that name the field and say what is wrong.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::model::{JobSpec, RequestSpec, StatusRule};
use crate::net::TargetPolicy;
use crate::schedule::CompiledSchedule;

/// A refused input: the JSON path of the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// A refusal of `field` because of `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Request methods a job may send.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Headers cronhook sets itself, or that would corrupt the request framing.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
];
/// The most headers a job may set.
pub const MAX_HEADERS: usize = 64;
/// The longest header value a job may set, in bytes.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// The largest request body a job may send, in bytes.
pub const MAX_REQUEST_BODY: usize = 256 * 1024;
/// The longest job name.
pub const MAX_NAME_CHARS: usize = 200;
/// The timeout range, in milliseconds.
pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1_000..=900_000;
/// The most attempts an execution may make.
pub const MAX_ATTEMPTS: u32 = 20;
/// The longest retry delay, in milliseconds (one day).
pub const MAX_RETRY_DELAY_MS: u64 = 86_400_000;

/// Checks a whole job spec; on success returns its compiled schedule.
///
/// `job_id` seeds `H` in cron expressions and `anchor` (the job's creation) anchors `@every`.
pub fn validate_job(
    spec: &JobSpec,
    job_id: &str,
    anchor: DateTime<Utc>,
    targets: &TargetPolicy,
) -> Result<CompiledSchedule, FieldError> {
    validate_name(&spec.name)?;
    let schedule = CompiledSchedule::compile(&spec.schedule, job_id, anchor)
        .map_err(|error| FieldError::new(error.field, error.message))?;
    validate_request(&spec.request, targets)?;

    let retry = &spec.retry;
    if !(1..=MAX_ATTEMPTS).contains(&retry.max_attempts) {
        return Err(FieldError::new(
            "retry.max_attempts",
            format!("must be between 1 and {MAX_ATTEMPTS} (it counts the first attempt)"),
        ));
    }
    if retry.max_delay_ms > MAX_RETRY_DELAY_MS {
        return Err(FieldError::new(
            "retry.max_delay_ms",
            format!("must be at most {MAX_RETRY_DELAY_MS} (one day)"),
        ));
    }
    if retry.initial_delay_ms > retry.max_delay_ms {
        return Err(FieldError::new(
            "retry.initial_delay_ms",
            "must not exceed retry.max_delay_ms",
        ));
    }

    if let StatusRule::Classes(text) = &spec.success.status {
        StatusRule::parse_classes(text)
            .map_err(|message| FieldError::new("success.status", message))?;
    }
    if let StatusRule::Codes(codes) = &spec.success.status {
        if codes.is_empty() {
            return Err(FieldError::new(
                "success.status",
                "must name at least one status code",
            ));
        }
        if let Some(bad) = codes.iter().find(|code| !(100..=599).contains(*code)) {
            return Err(FieldError::new(
                "success.status",
                format!("{bad} is not an HTTP status code (100 to 599)"),
            ));
        }
    }
    if let Some(pattern) = &spec.success.body_regex {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|error| {
                FieldError::new(
                    "success.body_regex",
                    format!("is not a valid regular expression: {error}"),
                )
            })?;
    }
    if spec.success.max_duration_ms == Some(0) {
        return Err(FieldError::new(
            "success.max_duration_ms",
            "must be positive",
        ));
    }
    if spec.alerts.after_consecutive_failures == 0 {
        return Err(FieldError::new(
            "alerts.after_consecutive_failures",
            "must be at least 1",
        ));
    }
    for (index, channel) in spec.alerts.channels.iter().enumerate() {
        if !crate::ids::has_prefix(channel, crate::ids::CHANNEL) {
            return Err(FieldError::new(
                format!("alerts.channels[{index}]"),
                format!("`{channel}` is not a channel id (chn_...)"),
            ));
        }
    }
    if spec.keep_last == Some(0) {
        return Err(FieldError::new(
            "keep_last",
            "must be at least 1, or null to keep what the retention period keeps",
        ));
    }
    if spec.auto_disable_after_failures == Some(0) {
        return Err(FieldError::new(
            "auto_disable_after_failures",
            "must be at least 1, or null to never disable",
        ));
    }
    Ok(schedule)
}

fn validate_name(name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a request: method, URL (scheme, host, literal addresses against `targets`), headers,
/// body and timeout.
pub fn validate_request(request: &RequestSpec, targets: &TargetPolicy) -> Result<(), FieldError> {
    if !METHODS.contains(&request.method.as_str()) {
        return Err(FieldError::new(
            "request.method",
            format!(
                "`{}` is not supported; use one of {}",
                request.method,
                METHODS.join(", ")
            ),
        ));
    }
    validate_target_url(&request.url, "request.url", targets)?;

    if request.headers.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "request.headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in &request.headers {
        let field = format!("request.headers.{name}");
        let is_token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            return Err(FieldError::new(field, "is not a valid header name"));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
            return Err(FieldError::new(
                field,
                "is set by cronhook itself and may not be overridden",
            ));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err(FieldError::new(
                field,
                format!("value must be at most {MAX_HEADER_VALUE} bytes"),
            ));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(FieldError::new(
                field,
                "value must not contain control characters or line breaks",
            ));
        }
    }
    if let Some(body) = &request.body
        && body.len() > MAX_REQUEST_BODY
    {
        return Err(FieldError::new(
            "request.body",
            format!("must be at most {MAX_REQUEST_BODY} bytes"),
        ));
    }
    if !TIMEOUT_MS.contains(&request.timeout_ms) {
        return Err(FieldError::new(
            "request.timeout_ms",
            format!(
                "must be between {} and {} milliseconds",
                TIMEOUT_MS.start(),
                TIMEOUT_MS.end()
            ),
        ));
    }
    Ok(())
}

/// Checks a URL that cronhook will call: `http` or `https`, a host, no user info, and a literal
/// address only when `targets` permits it. Host names are checked again after DNS, at connect time.
pub fn validate_target_url(
    text: &str,
    field: &str,
    targets: &TargetPolicy,
) -> Result<url::Url, FieldError> {
    let url = url::Url::parse(text)
        .map_err(|error| FieldError::new(field, format!("is not a valid URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FieldError::new(
            field,
            format!(
                "scheme `{}` is not allowed; use http or https",
                url.scheme()
            ),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            field,
            "must not contain a user name or password; send credentials in a header",
        ));
    }
    let literal: Option<IpAddr> = match url.host() {
        None => return Err(FieldError::new(field, "must name a host")),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.');
            if domain.eq_ignore_ascii_case("localhost") || domain.ends_with(".localhost") {
                Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            } else {
                None
            }
        }
    };
    if let Some(address) = literal
        && !targets.permits(address)
    {
        return Err(FieldError::new(
            field,
            format!(
                "points at {address}, a non-public address; cronhook refuses those unless the operator allows them (--allow-private-targets or --allowed-target-nets)"
            ),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobSpec;

    fn spec(patch: serde_json::Value) -> JobSpec {
        let mut base = serde_json::json!({
            "name": "nightly",
            "schedule": {"cron": "0 3 * * *"},
            "request": {"url": "https://example.com/hook"}
        });
        merge(&mut base, patch);
        serde_json::from_value(base).expect("test spec parses")
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        if let (Some(base), serde_json::Value::Object(patch)) = (base.as_object_mut(), patch) {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) if value.is_object() => merge(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
    }

    fn field_of(patch: serde_json::Value) -> String {
        validate_job(
            &spec(patch),
            "job_0",
            DateTime::UNIX_EPOCH,
            &TargetPolicy::default(),
        )
        .expect_err("spec is refused")
        .field
    }

    #[test]
    fn a_plain_job_is_valid() {
        let compiled = validate_job(
            &spec(serde_json::json!({})),
            "job_0",
            DateTime::UNIX_EPOCH,
            &TargetPolicy::default(),
        );
        assert!(compiled.is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        use serde_json::json;
        assert_eq!(field_of(json!({"name": " "})), "name");
        assert_eq!(
            field_of(json!({"schedule": {"cron": "nope"}})),
            "schedule.cron"
        );
        assert_eq!(
            field_of(json!({"schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}})),
            "schedule.timezone"
        );
        assert_eq!(
            field_of(json!({"request": {"method": "BREW"}})),
            "request.method"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "ftp://x.example/"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "not a url"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "https://u:p@example.com/"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "http://127.0.0.1/"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "http://localhost/"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "http://[::1]/"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"url": "http://0x7f.1/"}})),
            "request.url"
        );
        assert_eq!(
            field_of(json!({"request": {"headers": {"Host": "evil"}}})),
            "request.headers.Host"
        );
        assert_eq!(
            field_of(json!({"request": {"headers": {"webhook-id": "x"}}})),
            "request.headers.webhook-id"
        );
        assert_eq!(
            field_of(json!({"request": {"headers": {"X-A": "a\r\nB: c"}}})),
            "request.headers.X-A"
        );
        assert_eq!(
            field_of(json!({"request": {"timeout_ms": 10}})),
            "request.timeout_ms"
        );
        assert_eq!(
            field_of(json!({"retry": {"max_attempts": 0}})),
            "retry.max_attempts"
        );
        assert_eq!(
            field_of(json!({"retry": {"max_attempts": 21}})),
            "retry.max_attempts"
        );
        assert_eq!(
            field_of(json!({"retry": {"initial_delay_ms": 10, "max_delay_ms": 5}})),
            "retry.initial_delay_ms"
        );
        assert_eq!(
            field_of(json!({"success": {"status": "7xx"}})),
            "success.status"
        );
        assert_eq!(
            field_of(json!({"success": {"status": [99]}})),
            "success.status"
        );
        assert_eq!(
            field_of(json!({"success": {"body_regex": "("}})),
            "success.body_regex"
        );
        assert_eq!(
            field_of(json!({"alerts": {"channels": ["slack"]}})),
            "alerts.channels[0]"
        );
    }

    #[test]
    fn allowed_private_targets_pass() {
        let open = TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        };
        let loopback = spec(serde_json::json!({"request": {"url": "http://127.0.0.1:9/x"}}));
        assert!(validate_job(&loopback, "job_0", DateTime::UNIX_EPOCH, &open).is_ok());
    }
}
