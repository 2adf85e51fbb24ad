//! `/api/v1/keys`: the workspace's API keys. Listing, creating and revoking keys needs an
//! `admin` key. A key is shown once, when it is created; only its SHA-256 is kept.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cronhook_core::ids;
use cronhook_store::{ApiKey, ApiKeyScope};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, new_api_key};
use crate::error::ApiError;
use crate::extract::{IdPath, JsonBody, from_json};
use crate::jobs::now_ms;
use crate::render::timestamp;
use crate::schemas::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// The longest key name.
const MAX_NAME_CHARS: usize = 100;

/// An API key as listed (never the key itself).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApiKeyObject {
    /// `key_...`
    pub id: String,
    pub name: String,
    /// `read` (GET only), `write` (everything but key management) or `admin` (everything).
    #[schema(example = "admin")]
    pub scope: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the key last authenticated a request, to the minute.
    #[schema(required = true)]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the key was revoked; a revoked key authenticates nothing.
    #[schema(required = true)]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A key just created: the key object, and the key itself, shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreatedApiKey {
    #[schema(inline)]
    pub api_key: ApiKeyObject,
    /// The key: `chk_` and 46 letters and digits. Store it now; it is never shown again.
    pub key: String,
}

/// The list of keys.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyObject>,
}

/// What a new key is called and what it may do.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A name to recognise the key by (1 to 100 characters).
    pub name: String,
    /// `read`, `write` or `admin` (default `read`).
    #[serde(default)]
    pub scope: Option<String>,
}

/// The `{id}` of an API key.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct KeyId {
    /// The key's id, `key_...`.
    pub id: String,
}

fn render(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "scope": key.scope.as_str(),
        "created_at": timestamp(key.created_at),
        "last_used_at": key.last_used_at.map(timestamp),
        "revoked_at": key.revoked_at.map(timestamp),
    })
}

/// List API keys
///
/// Every key of the workspace, revoked ones included, oldest first. Needs an `admin` key.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The workspace's keys", body = ApiKeyList),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let keys = state.store.list_api_keys(&caller.workspace_id).await?;
    Ok(Json(json!({
        "data": keys.iter().map(render).collect::<Vec<_>>(),
    })))
}

/// Create an API key
///
/// Answers the key once; only its SHA-256 is kept. Needs an `admin` key.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    security(("api_key" = [])),
    request_body(content = NewApiKey, description = "The key's name and scope"),
    responses(
        (status = 201, description = "The key, shown this once", body = CreatedApiKey),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let request: NewApiKey = from_json(body)?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    let scope = match request.scope.as_deref() {
        None => ApiKeyScope::Read,
        Some(text) => ApiKeyScope::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "scope",
                format!("`{text}` is not a scope; use read, write or admin"),
            )
        })?,
    };
    let (key, key_hash) = new_api_key();
    let api_key = ApiKey {
        id: ids::new_id(ids::API_KEY),
        workspace_id: caller.workspace_id,
        name: name.to_owned(),
        key_hash,
        scope,
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    state.store.insert_api_key(&api_key).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"api_key": render(&api_key), "key": key})),
    ))
}

/// Revoke an API key
///
/// From the next request on, the key authenticates nothing. Needs an `admin` key.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    security(("api_key" = [])),
    params(KeyId),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key (or already revoked) in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    if !ids::has_prefix(&id, ids::API_KEY)
        || !state
            .store
            .revoke_api_key(&caller.workspace_id, &id, now_ms())
            .await?
    {
        return Err(ApiError::not_found(format!(
            "no active API key `{id}` in this workspace"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
