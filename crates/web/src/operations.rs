//! Operations routes that need no key: `GET /metrics` (Prometheus text), the OpenAPI document at
//! `GET /api/v1/openapi.json`, and Swagger UI at `/docs` (its assets are compiled into the
//! binary: nothing is fetched at build or run time).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{DOCS_PATH, OPENAPI_PATH, openapi_json};
use crate::schemas::Problem;

/// The media type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

/// Swagger UI at `/docs`, reading the document from `/api/v1/openapi.json`.
pub(crate) fn docs_router() -> Router<AppState> {
    let config = Config::new([OPENAPI_PATH])
        // No calls to the public validator service.
        .validator_url("none")
        .try_it_out_enabled(true)
        .persist_authorization(true);
    SwaggerUi::new(DOCS_PATH).config(config).into()
}

/// Metrics in the Prometheus text format
///
/// Executions by status and trigger, attempts by outcome, fire lag and attempt duration
/// histograms, the executor's queue depth and requests in flight, materialized occurrences.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "Metrics are not recorded by this process", body = Problem,
            content_type = "application/problem+json"),
    )
)]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let render = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("metrics are not recorded by this process"))?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], render()))
}

/// This document
///
/// The OpenAPI 3.1 document of the API; Swagger UI at `/docs` renders it.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object,
            content_type = "application/json"),
    )
)]
async fn openapi_document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}
