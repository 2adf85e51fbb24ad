//! Request extractors whose every rejection is a problem+json answer: JSON bodies (media type,
//! size limit, syntax), typed deserialization that names the offending field, query parameters,
//! and list pagination.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cronhook_store::PageRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// The largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request body that is JSON: `application/json`, `application/merge-patch+json`, or any other
/// `application/*+json`. Parsed only for syntax; see [`from_json`] for typing.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let media_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let is_json = media_type.as_deref().is_some_and(|media_type| {
            media_type == "application/json"
                || (media_type.starts_with("application/") && media_type.ends_with("+json"))
        });
        if !is_json {
            let sent =
                media_type.map_or_else(|| "no Content-Type".to_owned(), |m| format!("`{m}`"));
            return Err(ApiError::unsupported_media_type(format!(
                "Content-Type: the request body must be JSON (application/json, or application/merge-patch+json for PATCH), not {sent}"
            )));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(MAX_BODY_BYTES)
                } else {
                    ApiError::bad_request(format!(
                        "the request body could not be read: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is empty; expected a JSON object",
            ));
        }
        let value = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::bad_request(format!("request body is not valid JSON: {error}"))
        })?;
        Ok(JsonBody(value))
    }
}

/// Deserializes a JSON value into `T`; a wrong type, an unknown field or a missing field is a
/// 422 naming the field's path (`request.url`, `retry.max_attempts`).
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let original = value.clone();
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = error.inner().to_string();
        if message.starts_with("data did not match any variant of untagged enum") {
            let at = value_at(&original, error.path());
            let (field, message) = explain_untagged(&path, &message, at);
            return ApiError::invalid(field, message);
        }
        // serde reports a missing field at the enclosing object; name the field itself.
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .filter(|name| path != *name && !path.ends_with(&format!(".{name}")))
            .map(|name| join_path(&path, name));
        let field = named.unwrap_or(path);
        if field.is_empty() {
            ApiError::invalid("", format!("the request body is not acceptable: {message}"))
        } else {
            ApiError::invalid(field, message)
        }
    })
}

/// The value at a deserialization error's path.
fn value_at<'a>(root: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(root, |value, segment| match segment {
        Segment::Seq { index } => value.get(*index),
        Segment::Map { key } => value.get(key.as_str()),
        Segment::Enum { .. } | Segment::Unknown => Some(value),
    })
}

/// Says what an untagged enum (a schedule, a success status rule) accepts, naming the inner
/// field that is wrong where it can tell; serde's own message names no field.
fn explain_untagged(path: &str, message: &str, value: Option<&Value>) -> (String, String) {
    const SCHEDULE_SHAPES: &str =
        r#"a schedule is {"cron": EXPR, "timezone": IANA} or {"at": RFC3339}"#;
    if message.contains("StatusRule") {
        return (
            path.to_owned(),
            r#"must be a string of status classes such as "2xx,3xx", or a list of status codes such as [200, 204]"#.to_owned(),
        );
    }
    if !message.contains("ScheduleSpec") {
        return (path.to_owned(), message.to_owned());
    }
    let Some(Value::Object(fields)) = value else {
        return (
            path.to_owned(),
            format!("must be an object: {SCHEDULE_SHAPES}"),
        );
    };
    let allowed: &[&str] = if fields.contains_key("at") {
        &["at"]
    } else if fields.contains_key("cron") {
        &["cron", "timezone"]
    } else {
        return (
            path.to_owned(),
            format!("names neither `cron` nor `at`: {SCHEDULE_SHAPES}"),
        );
    };
    if let Some(extra) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
        return (
            join_path(path, extra),
            format!("is not a schedule field: {SCHEDULE_SHAPES}"),
        );
    }
    for name in allowed {
        match fields.get(*name) {
            Some(Value::String(text)) if *name == "at" => {
                if let Err(error) = chrono::DateTime::parse_from_rfc3339(text) {
                    return (
                        join_path(path, name),
                        format!(
                            "`{text}` is not an RFC 3339 timestamp such as \"2026-11-27T02:00:00Z\": {error}"
                        ),
                    );
                }
            }
            Some(Value::String(_)) | None => {}
            Some(_) => return (join_path(path, name), "must be a string".to_owned()),
        }
    }
    (
        path.to_owned(),
        format!("is not a valid schedule: {SCHEDULE_SHAPES}"),
    )
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// The `{id}` segment of a path. An id that cannot be decoded names nothing: 404.
#[derive(Debug)]
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| IdPath(id))
            .map_err(|_| ApiError::not_found("no such object in this workspace"))
    }
}

/// The query string as name → value (the last of repeated names wins).
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::bad_request(format!(
                    "the query string is malformed: {}",
                    rejection.body_text()
                ))
            })?;
        Ok(Params(pairs.into_iter().collect()))
    }
}

impl Params {
    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The default page size of lists.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size of lists.
pub const MAX_LIMIT: u32 = 500;

/// The page asked for by `?limit=` and `?cursor=`.
pub fn page_request(params: &Params) -> Result<PageRequest, ApiError> {
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "limit",
                    format!("`{text}` is not a whole number between 1 and {MAX_LIMIT}"),
                )
            })?,
    };
    let after = match params.get("cursor") {
        None | Some("") => None,
        Some(text) => Some(decode_cursor(text).ok_or_else(|| {
            ApiError::bad_parameter(
                "cursor",
                "is not a cursor this API returned; pass `next_cursor` from the previous page unchanged",
            )
        })?),
    };
    Ok(PageRequest { limit, after })
}

/// The opaque cursor for a store's `next_after` id.
pub fn encode_cursor(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

/// The store's `next_after` id in a cursor, or `None` when the text is not one.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    (!text.is_empty() && !text.chars().any(char::is_control)).then_some(text)
}

/// A list answer: `{"data": [...], "next_cursor": "..."|null}`.
pub fn list_body(data: Vec<Value>, next_after: Option<&str>) -> Value {
    serde_json::json!({
        "data": data,
        "next_cursor": next_after.map(encode_cursor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = encode_cursor("job_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b");
        assert!(!cursor.contains('='));
        assert_eq!(
            decode_cursor(&cursor).as_deref(),
            Some("job_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b")
        );
        assert_eq!(decode_cursor("!!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])), None);
        assert_eq!(decode_cursor(&encode_cursor("a\u{0}b")), None);
    }

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(page_request(&params(&[])).map(|p| p.limit).ok(), Some(50));
        assert_eq!(
            page_request(&params(&[("limit", "500")]))
                .map(|p| p.limit)
                .ok(),
            Some(500)
        );
        for bad in ["0", "501", "ten", "-1", ""] {
            let error = page_request(&params(&[("limit", bad)])).expect_err(bad);
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert_eq!(error.body()["field"], "limit");
        }
        let error = page_request(&params(&[("cursor", "%%%")])).expect_err("bad cursor");
        assert_eq!(error.body()["field"], "cursor");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        url: String,
        count: u32,
    }

    #[test]
    fn typing_errors_name_the_field_path() {
        let field = |value: Value| {
            from_json::<Outer>(value).expect_err("refused").body()["field"]
                .as_str()
                .map(str::to_owned)
        };
        use serde_json::json;
        assert_eq!(
            field(json!({"inner": {"url": "u"}})).as_deref(),
            Some("inner.count")
        );
        assert_eq!(
            field(json!({"inner": {"url": "u", "count": "x"}})).as_deref(),
            Some("inner.count")
        );
        assert_eq!(
            field(json!({"inner": {"url": "u", "count": 1, "extra": 1}})).as_deref(),
            Some("inner.extra")
        );
        assert_eq!(field(json!({})).as_deref(), Some("inner"));
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WithSchedule {
        schedule: cronhook_core::ScheduleSpec,
        #[serde(default)]
        status: cronhook_core::StatusRule,
    }

    #[test]
    fn untagged_schedule_errors_name_the_inner_field() {
        use serde_json::json;
        let field = |value: Value| {
            from_json::<WithSchedule>(value)
                .expect_err("refused")
                .body()["field"]
                .as_str()
                .map(str::to_owned)
        };
        assert_eq!(
            field(json!({"schedule": {"at": "tomorrow"}})).as_deref(),
            Some("schedule.at")
        );
        assert_eq!(
            field(json!({"schedule": {"cron": 5}})).as_deref(),
            Some("schedule.cron")
        );
        assert_eq!(
            field(json!({"schedule": {"cron": "* * * * *", "tz": "UTC"}})).as_deref(),
            Some("schedule.tz")
        );
        assert_eq!(
            field(json!({"schedule": "daily"})).as_deref(),
            Some("schedule")
        );
        assert_eq!(field(json!({"schedule": {}})).as_deref(), Some("schedule"));
        assert_eq!(
            field(json!({"schedule": {"at": "2030-01-01T00:00:00Z"}, "status": true})).as_deref(),
            Some("status")
        );
    }
}
