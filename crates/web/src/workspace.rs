//! `/api/v1/workspace`: the caller's workspace and its webhook signing secret.

use axum::Json;
use axum::extract::State;
use cronhook_store::Workspace;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::jobs::now_ms;
use crate::render::timestamp;
use crate::schemas::{self, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_workspace))
        .routes(routes!(rotate_signing_secret))
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

/// Read the workspace
///
/// With its webhook signing secret (`whsec_...`), which signs every outbound request.
#[utoipa::path(
    get,
    path = "/api/v1/workspace",
    tag = "workspace",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The caller's workspace", body = schemas::Workspace),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The key's workspace no longer exists", body = Problem, content_type = "application/problem+json"),
    )
)]
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

/// Rotate the signing secret
///
/// For 24 hours after, requests carry two signatures: by the new and by the previous secret.
#[utoipa::path(
    post,
    path = "/api/v1/workspace/rotate-signing-secret",
    tag = "workspace",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The workspace with its new secret", body = schemas::Workspace),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
    )
)]
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
