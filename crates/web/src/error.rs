//! The one error type of the API: every failure becomes an RFC 9457 `application/problem+json`
//! answer whose `detail` names the field and what is wrong with it.
//!
//! Internal failures (a database error, unreadable stored data) are logged once, here, when the
//! response is built, and answered with an opaque 500 that leaks nothing.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cronhook_core::FieldError;
use cronhook_store::StoreError;
use serde_json::{Value, json};

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A failed request, as the client will see it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// A stable, machine-readable code (`validation_failed`, `not_found`, ...).
    code: &'static str,
    detail: String,
    /// The field (a JSON path, or a query parameter) that is wrong, when one is.
    field: Option<String>,
    /// Kept only to be logged; never shown to the client.
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Set on 401 answers.
    www_authenticate: bool,
    /// Seconds to wait, sent as `Retry-After` (429 answers).
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            source: None,
            www_authenticate: false,
            retry_after: None,
        }
    }

    fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: a malformed request (a query parameter, a body that is not JSON).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 400 naming a query parameter: `{field}: {message}`.
    pub fn bad_parameter(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("{field}: {message}"),
        )
        .with_field(field)
    }

    /// 422: a well-formed body or parameter whose value is refused.
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        let detail = if field.is_empty() {
            message.to_string()
        } else {
            format!("{field}: {message}")
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        )
        .with_field(field)
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        error.www_authenticate = true;
        error
    }

    /// 403: the API key is valid but its scope does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 429 with `Retry-After: retry_after_secs`.
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
        error.retry_after = Some(retry_after_secs.max(1));
        error
    }

    /// 404: nothing with this id in the caller's workspace (or no such route).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 405: the route exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this resource",
        )
    }

    /// 409: a unique value is taken.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 413: the request body is over the limit.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit_bytes} bytes"),
        )
    }

    /// 415: the body is not of a media type this route reads.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    }

    /// 503: the database cannot be reached right now.
    pub fn unavailable(source: Option<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; try again shortly",
        );
        error.source = source;
        error
    }

    /// 500: a failure that is ours, not the client's. `source` is logged, never shown.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        );
        error.source = Some(source.into());
        error
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field this error names, when it names one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong, in words, without the field name in front.
    pub fn message(&self) -> &str {
        match &self.field {
            Some(field) => self
                .detail
                .strip_prefix(field.as_str())
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(&self.detail),
            None => &self.detail,
        }
    }

    /// Logs the hidden cause of an internal or unavailable error, once (the dashboard, which
    /// answers with its own page rather than `into_response`, calls this).
    pub fn log_source(&self) {
        if let Some(source) = &self.source {
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(error = %error_chain(source.as_ref()), "store unavailable");
            } else {
                tracing::error!(error = %error_chain(source.as_ref()), "request failed");
            }
        }
    }

    /// The problem document sent to the client.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
            if self.status == StatusCode::UNPROCESSABLE_ENTITY {
                let message = self
                    .detail
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&self.detail);
                body["errors"] = json!([{"field": field, "message": message}]);
            }
        }
        body
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { what } => ApiError::conflict(format!("{what} already exists")),
            StoreError::NotFound => ApiError::not_found("not found"),
            StoreError::Unavailable(source) => ApiError::unavailable(Some(source)),
            other => ApiError::internal(other),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::invalid(error.field, error.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(error = %error_chain(source.as_ref()), "store unavailable");
            } else {
                tracing::error!(error = %error_chain(source.as_ref()), "request failed");
            }
        }
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An error and all its causes, `: `-separated.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_problem_names_the_field() {
        let error = ApiError::invalid("schedule.cron", "is not a cron expression");
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = error.body();
        assert_eq!(body["status"], 422);
        assert_eq!(body["title"], "Unprocessable Entity");
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["field"], "schedule.cron");
        assert_eq!(body["detail"], "schedule.cron: is not a cron expression");
        assert_eq!(body["errors"][0]["field"], "schedule.cron");
        assert_eq!(body["errors"][0]["message"], "is not a cron expression");
    }

    #[test]
    fn problems_are_served_as_problem_json() {
        let response = ApiError::unauthorized("no key").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn internal_errors_are_opaque() {
        let error = ApiError::from(StoreError::Corrupt("secret row detail".into()));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = error.body().to_string();
        assert!(!body.contains("secret row detail"), "{body}");
    }

    #[test]
    fn store_conflicts_and_absences_map_to_409_and_404() {
        let conflict = ApiError::from(StoreError::Conflict {
            what: "job name `a`".into(),
        });
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(
            ApiError::from(StoreError::NotFound).status(),
            StatusCode::NOT_FOUND
        );
    }
}
