//! cronhook's HTTP surface: the REST API under `/api/v1`, API-key auth, and the health probes.
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
pub mod error;
mod executions;
pub mod extract;
mod health;
mod jobs;
pub mod merge_patch;
mod preview;
mod render;
mod workspace;

pub use error::ApiError;

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
}

/// The whole HTTP application: health probes and the REST API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(jobs::router())
        .merge(executions::router())
        .merge(preview::router())
        .merge(workspace::router())
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
