//! API keys: create (the key is shown once, on the page that answers the creation), list,
//! revoke.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use cronhook_core::ids;
use cronhook_store::{ApiKey, ApiKeyScope};

use super::session::{self, Viewer};
use super::view;
use super::{Layout, PageError, PageResult, render};
use crate::AppState;
use crate::jobs::now_ms;

/// The longest key name.
const MAX_NAME_CHARS: usize = 100;

struct KeyRow {
    id: String,
    name: String,
    scope: &'static str,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    l: Layout,
    rows: Vec<KeyRow>,
    /// The key just created: shown this once, never again.
    created_key: Option<String>,
    name: String,
    name_error: Option<String>,
    scopes: Vec<(&'static str, bool)>,
}

async fn keys_page(
    state: &AppState,
    viewer: &Viewer,
    created_key: Option<String>,
    name: String,
    name_error: Option<String>,
    scope: ApiKeyScope,
) -> Result<KeysPage, PageError> {
    let keys = state.store.list_api_keys(&viewer.user.workspace_id).await?;
    let rows = keys
        .into_iter()
        .rev()
        .map(|key| KeyRow {
            id: key.id,
            name: key.name,
            scope: key.scope.as_str(),
            created: view::stamp(Some(key.created_at)),
            last_used: key
                .last_used_at
                .map_or_else(|| "never".to_owned(), |at| view::stamp(Some(at))),
            revoked: key.revoked_at.map(|at| view::stamp(Some(at))),
        })
        .collect();
    Ok(KeysPage {
        l: Layout::new("API keys", viewer, "keys"),
        rows,
        created_key,
        name,
        name_error,
        scopes: ApiKeyScope::ALL
            .into_iter()
            .map(|s| (s.as_str(), s == scope))
            .collect(),
    })
}

/// `GET /keys`.
pub(crate) async fn page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let page = keys_page(
        &state,
        &viewer,
        None,
        String::new(),
        None,
        ApiKeyScope::Write,
    )
    .await?;
    Ok(render(StatusCode::OK, &page))
}

/// `POST /keys`: creates a key and shows it once.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, form.get("csrf").map(String::as_str))?;
    let name = form
        .get("name")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let scope = form
        .get("scope")
        .and_then(|s| ApiKeyScope::parse(s))
        .ok_or_else(|| PageError::bad_request("Choose a scope: read, write or admin."))?;
    let name_error = if name.is_empty() {
        Some("Give the key a name, such as the program that will use it.".to_owned())
    } else if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        Some(format!(
            "Use at most {MAX_NAME_CHARS} characters, on one line."
        ))
    } else {
        None
    };
    if name_error.is_some() {
        let page = keys_page(&state, &viewer, None, name, name_error, scope).await?;
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let (key, key_hash) = crate::auth::new_api_key();
    state
        .store
        .insert_api_key(&ApiKey {
            id: ids::new_id(ids::API_KEY),
            workspace_id: viewer.user.workspace_id.clone(),
            name,
            key_hash,
            scope,
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        })
        .await?;
    let page = keys_page(&state, &viewer, Some(key), String::new(), None, scope).await?;
    Ok(render(StatusCode::OK, &page))
}

/// `POST /keys/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, form.get("csrf").map(String::as_str))?;
    if !ids::has_prefix(&id, ids::API_KEY) {
        return Err(PageError::not_found());
    }
    let revoked = state
        .store
        .revoke_api_key(&viewer.user.workspace_id, &id, now_ms())
        .await?;
    if !revoked
        && state
            .store
            .api_key(&viewer.user.workspace_id, &id)
            .await?
            .is_none()
    {
        return Err(PageError::not_found());
    }
    Ok(Redirect::to("/keys").into_response())
}
