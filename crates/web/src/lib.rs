//! cronhook's HTTP surface: the REST API under `/api/v1`, API-key auth, the health probes,
//! `/metrics`, and the API's OpenAPI document (`/api/v1/openapi.json`, rendered at `/docs`).
//!
//! Architecture invariant: every store call made on behalf of a request passes the workspace of
//! the caller's API key, so no route can read or change another workspace's objects (their ids
//! answer 404). Every failure is an RFC 9457 problem+json answer; bad input is a 4xx and changes
//! nothing.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use cronhook_executor::ExecutorHandle;
use cronhook_store::Store;

pub mod auth;
mod channels;
pub mod dashboard;
pub mod error;
mod executions;
pub mod extract;
mod health;
mod jobs;
mod keys;
pub mod limits;
pub mod merge_patch;
mod nodes;
pub mod openapi;
mod operations;
mod preview;
mod render;
mod schemas;
mod workspace;

pub use error::ApiError;
pub use openapi::openapi;

/// Renders the process's metrics in the Prometheus text format (the binary installs the
/// recorder and hands its render function over).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Present when this process runs the executor role: run-now/replay executions are created
    /// leased to it and submitted in-process; otherwise created queued (another node's executor
    /// claims them).
    pub executor: Option<ExecutorHandle>,
    /// Notified whenever a job is created, changed, paused, resumed or deleted, so the scheduler
    /// re-reads due jobs at once.
    pub jobs_changed: Arc<tokio::sync::Notify>,
    pub targets: cronhook_core::net::TargetPolicy,
    /// Renders `GET /metrics`; without it (no recorder installed) `/metrics` answers 404.
    pub metrics: Option<MetricsRender>,
    /// Present when this process delivers alerts: woken when a channel test is recorded, so it
    /// is sent at once (other nodes' workers find it within a few seconds).
    pub alerts: Option<cronhook_alerts::AlertsHandle>,
    /// The per-workspace API rate limit, the sign-in limiter and API key use tracking.
    pub limits: Arc<limits::Limits>,
}

/// The whole HTTP application: health probes, metrics, the REST API and its documentation.
pub fn app(state: AppState) -> Router {
    // The API's routes come with their OpenAPI paths (see `openapi::api_router`).
    let (api, _document) = openapi::api_router().split_for_parts();
    Router::new()
        .merge(api)
        .merge(dashboard::router())
        .merge(operations::docs_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
