//! `/api/v1/workspace`: the caller's workspace and its webhook signing secret.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use cronhook_store::Workspace;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::jobs::now_ms;
use crate::render::timestamp;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspace", get(get_workspace))
        .route(
            "/api/v1/workspace/rotate-signing-secret",
            post(rotate_signing_secret),
        )
}

fn render(workspace: &Workspace) -> Value {
    json!({
        "id": workspace.id,
        "slug": workspace.slug,
        "signing_secret": workspace.signing_secret,
        "previous_signing_secret": workspace.previous_signing_secret,
        "signing_secret_rotated_at": workspace.signing_secret_rotated_at.map(timestamp),
    })
}

async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let workspace = state
        .store
        .workspace(&caller.workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found("this API key's workspace no longer exists"))?;
    Ok(Json(render(&workspace)))
}

async fn rotate_signing_secret(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let secret = cronhook_executor::signing::new_secret();
    let workspace = state
        .store
        .rotate_signing_secret(&caller.workspace_id, &secret, now_ms())
        .await?;
    Ok(Json(render(&workspace)))
}
