//! `/api/v1/channels`, `/api/v1/alerts` and `/api/v1/workspace/alert-channels`: where alerts
//! go, the alert log, and the channels of jobs that name none.
//!
//! A channel is `{"name": ..., "type": "email"|"slack"|"webhook"|"discord", ...}`. Its URL passes
//! the same SSRF guard as a job's when it is defined (and again when the worker connects). Slack
//! and Discord webhook URLs are credentials: shown masked (`••••` and the last 4 characters),
//! and a PATCH that sends the masked value back keeps the stored one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cronhook_core::alerting::{self, AlertFacts, AlertKind, ChannelTarget};
use cronhook_core::{ids, secrets};
use cronhook_store::{Alert, AlertStatus, Channel};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{IdPath, JsonBody, Params, from_json, list_body, page_request};
use crate::jobs::now_ms;
use crate::render::timestamp;
use crate::schemas::{PageQuery, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_channel, list_channels))
        .routes(routes!(get_channel, patch_channel, delete_channel))
        .routes(routes!(test_channel))
        .routes(routes!(list_alerts))
        .routes(routes!(get_default_channels, put_default_channels))
}

/// Fields the server sets; ignored when a client sends them back.
const READ_ONLY: &[&str] = &["id", "created_at", "updated_at"];

/// The channel types, for messages.
const TYPES: &str = "`email` (with `to`), `slack` (with `webhook_url`), `webhook` (with `url`) or `discord` (with `webhook_url`)";

/// An alert channel as the API shows it (Slack and Discord webhook URLs masked).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChannelSchema {
    /// `chn_...`
    #[schema(example = "chn_0193a6f0c2d87c3e8a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Unique within the workspace.
    pub name: String,
    /// `email`, `slack`, `webhook` or `discord`.
    #[schema(example = "slack")]
    pub r#type: String,
    /// Email channels: the recipients.
    pub to: Option<Vec<String>>,
    /// Slack and Discord channels: the incoming webhook's URL, masked.
    pub webhook_url: Option<String>,
    /// Webhook channels: where the signed JSON event is POSTed.
    pub url: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A new channel: `name` (optional; derived from the type when left out), `type`, and the
/// type's field.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(value_type = Object, example = json!({"name": "ops", "type": "email", "to": ["ops@example.com"]}))]
pub struct NewChannelSchema(Value);

/// A page of channels.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChannelList {
    pub data: Vec<ChannelSchema>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One alert to one channel, and whether its delivery succeeded.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AlertSchema {
    /// `alr_...`
    pub id: String,
    #[schema(required = true)]
    pub job_id: Option<String>,
    #[schema(required = true)]
    pub execution_id: Option<String>,
    pub channel_id: String,
    /// `failing`, `recovered`, `disabled` or `test`.
    pub kind: AlertKind,
    /// `pending` (not sent yet, or waiting for a retry), `delivered` or `failed`.
    #[schema(example = "delivered")]
    pub status: String,
    /// Delivery tries so far.
    pub attempts: u32,
    /// The last delivery error.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The job's name when the alert was raised.
    #[schema(required = true)]
    pub job_name: Option<String>,
    /// Consecutive failed executions when the alert was raised.
    pub streak: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the next delivery try is due (pending alerts).
    #[schema(required = true)]
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(required = true)]
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of alerts, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AlertList {
    pub data: Vec<AlertSchema>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The channels that alert for jobs whose `alerts.channels` is empty.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultChannels {
    pub channels: Vec<String>,
}

/// The `{id}` of a channel.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ChannelId {
    /// The channel's id, `chn_...`.
    pub id: String,
}

/// A channel's URL as it may be shown (Slack and Discord webhook URLs masked), with its field
/// name; `None` for email channels.
pub(crate) fn shown_url(target: &ChannelTarget) -> Option<(&'static str, String)> {
    let (field, url) = target.url()?;
    if target.url_is_secret() {
        Some((field, secrets::mask(url)))
    } else {
        Some((field, url.to_owned()))
    }
}

fn render_channel(channel: &Channel) -> Value {
    let mut target = serde_json::to_value(&channel.target).unwrap_or(Value::Null);
    if let Some((field, url)) = shown_url(&channel.target) {
        target[field] = Value::String(url);
    }
    let mut body = json!({
        "id": channel.id,
        "name": channel.name,
        "created_at": timestamp(channel.created_at),
        "updated_at": timestamp(channel.updated_at),
    });
    if let (Value::Object(body), Value::Object(target)) = (&mut body, target) {
        body.extend(target);
    }
    body
}

pub(crate) fn status_word(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Pending => "pending",
        AlertStatus::Delivered => "delivered",
        AlertStatus::Failed => "failed",
    }
}

pub(crate) fn render_alert(alert: &Alert) -> Value {
    json!({
        "id": alert.id,
        "job_id": alert.job_id,
        "execution_id": alert.execution_id,
        "channel_id": alert.channel_id,
        "kind": alert.kind.as_str(),
        "status": status_word(alert.status),
        "attempts": alert.attempts,
        "error": alert.error,
        "job_name": alert.facts.job_name,
        "streak": alert.facts.streak,
        "created_at": timestamp(alert.created_at),
        "next_attempt_at": alert.next_attempt_at.filter(|_| alert.status == AlertStatus::Pending).map(timestamp),
        "delivered_at": alert.delivered_at.map(timestamp),
    })
}

/// Splits a channel body into its name and its target, checking both.
fn parse_channel(
    state: &AppState,
    mut body: Value,
    default_name: impl FnOnce(&ChannelTarget) -> String,
) -> Result<(String, ChannelTarget), ApiError> {
    let Value::Object(fields) = &mut body else {
        return Err(ApiError::invalid(
            "",
            "the request body must be a JSON object",
        ));
    };
    for field in READ_ONLY {
        fields.remove(*field);
    }
    let name = match fields.remove("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => return Err(ApiError::invalid("name", "must be a string")),
    };
    match fields.get("type") {
        Some(Value::String(kind))
            if ["email", "slack", "webhook", "discord"].contains(&kind.as_str()) => {}
        Some(Value::String(kind)) => {
            return Err(ApiError::invalid(
                "type",
                format!("`{kind}` is not a channel type; use {TYPES}"),
            ));
        }
        Some(_) => return Err(ApiError::invalid("type", format!("must be {TYPES}"))),
        None => return Err(ApiError::invalid("type", format!("is required: {TYPES}"))),
    }
    let target: ChannelTarget = from_json(body)?;
    let name = name.unwrap_or_else(|| default_name(&target));
    alerting::validate_channel(&name, &target, &state.targets)?;
    Ok((name, target))
}

/// `email-1a2b3c`: a name for a channel created without one.
fn derived_name(id: &str, target: &ChannelTarget) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}-{tail}", target.type_name())
}

pub(crate) async fn load_channel(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Channel, ApiError> {
    let not_found = || ApiError::not_found(format!("no channel `{id}` in this workspace"));
    if !ids::has_prefix(id, ids::CHANNEL) {
        return Err(not_found());
    }
    state
        .store
        .channel(&caller.workspace_id, id)
        .await?
        .ok_or_else(not_found)
}

/// Refuses channel ids that name no channel of the workspace, naming `field[i]`.
pub(crate) async fn check_channel_ids(
    state: &AppState,
    workspace_id: &str,
    channel_ids: &[String],
    field: &str,
) -> Result<(), ApiError> {
    for (index, id) in channel_ids.iter().enumerate() {
        let exists = ids::has_prefix(id, ids::CHANNEL)
            && state.store.channel(workspace_id, id).await?.is_some();
        if !exists {
            return Err(ApiError::invalid(
                format!("{field}[{index}]"),
                format!("`{id}` is not a channel of this workspace (see GET /api/v1/channels)"),
            ));
        }
    }
    Ok(())
}

/// Create an alert channel
///
/// Email channels send through the operator's SMTP server (`CRONHOOK_SMTP_URL`); a node
/// without one records their deliveries as failed, saying so. Try a channel with
/// `POST /api/v1/channels/{id}/test`.
#[utoipa::path(
    post,
    path = "/api/v1/channels",
    tag = "alerts",
    security(("api_key" = [])),
    request_body(content = NewChannelSchema, description = "The channel"),
    responses(
        (status = 201, description = "The channel, created", body = ChannelSchema),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another channel of this workspace has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused; `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let channel = create_channel_from(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(render_channel(&channel))))
}

/// Checks a new channel's body (as the API takes it) and stores it: shared by the API and the
/// dashboard's form.
pub(crate) async fn create_channel_from(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> Result<Channel, ApiError> {
    let id = ids::new_id(ids::CHANNEL);
    refuse_masked(&body)?;
    let (name, target) = parse_channel(state, body, |target| derived_name(&id, target))?;
    let now = now_ms();
    let channel = Channel {
        id,
        workspace_id: caller.workspace_id.clone(),
        name,
        target,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_channel(&channel).await?;
    Ok(channel)
}

/// A masked URL on create stands for nothing stored.
fn refuse_masked(body: &Value) -> Result<(), ApiError> {
    for field in ["webhook_url", "url"] {
        if let Some(Value::String(value)) = body.get(field)
            && value.starts_with(secrets::MASK)
        {
            return Err(ApiError::invalid(
                field,
                "is a masked value; send the real URL",
            ));
        }
    }
    Ok(())
}

/// List alert channels
#[utoipa::path(
    get,
    path = "/api/v1/channels",
    tag = "alerts",
    security(("api_key" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of channels", body = ChannelList),
        (status = 400, description = "`limit` or `cursor` is not acceptable", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let page = page_request(&params)?;
    let channels = state
        .store
        .list_channels(&caller.workspace_id, &page)
        .await?;
    let data = channels.items.iter().map(render_channel).collect();
    Ok(Json(list_body(data, channels.next_after.as_deref())))
}

/// Read an alert channel
#[utoipa::path(
    get,
    path = "/api/v1/channels/{id}",
    tag = "alerts",
    security(("api_key" = [])),
    params(ChannelId),
    responses(
        (status = 200, description = "The channel", body = ChannelSchema),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No channel with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_channel(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let channel = load_channel(&state, &caller, &id).await?;
    Ok(Json(render_channel(&channel)))
}

/// Change an alert channel
///
/// A JSON merge patch (RFC 7396), validated as a whole before anything changes. Sending the
/// masked webhook URL back keeps the stored one.
#[utoipa::path(
    patch,
    path = "/api/v1/channels/{id}",
    tag = "alerts",
    security(("api_key" = [])),
    params(ChannelId),
    request_body(content((NewChannelSchema = "application/merge-patch+json"), (NewChannelSchema = "application/json")), description = "The fields to change"),
    responses(
        (status = 200, description = "The channel, changed", body = ChannelSchema),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No channel with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another channel of this workspace has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is refused; `field` names it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn patch_channel(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(patch): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let channel = load_channel(&state, &caller, &id).await?;
    let mut patched = serde_json::to_value(&channel.target).map_err(ApiError::internal)?;
    if let Value::Object(fields) = &mut patched {
        fields.insert("name".to_owned(), Value::String(channel.name.clone()));
    }
    let mut patch = patch;
    if let Value::Object(fields) = &mut patch {
        // A type change replaces the whole target: the old type's fields do not carry over.
        if fields
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|kind| kind != channel.target.type_name())
        {
            patched = Value::Object(Map::from_iter([(
                "name".to_owned(),
                Value::String(channel.name.clone()),
            )]));
        }
    }
    crate::merge_patch::merge_patch(&mut patched, &patch);
    // The masked URL sent back stands for the stored one.
    if let Some((field, stored)) = channel.target.url()
        && let Some(Value::String(sent)) = patched.get_mut(field)
        && sent.starts_with(secrets::MASK)
    {
        if secrets::is_masked_form_of(sent, stored) {
            *sent = stored.to_owned();
        } else {
            return Err(ApiError::invalid(
                field,
                "is a masked value that does not match the stored URL; send the real URL, or the masked value exactly as the API showed it",
            ));
        }
    }
    refuse_masked(&patched)?;
    let (name, target) = parse_channel(&state, patched, |_| channel.name.clone())?;
    let updated = Channel {
        name,
        target,
        updated_at: now_ms(),
        ..channel
    };
    state.store.update_channel(&updated).await?;
    Ok(Json(render_channel(&updated)))
}

/// Delete an alert channel
///
/// Its alerts stay in the log; it leaves the workspace's default channels. Jobs that name it
/// no longer alert through it.
#[utoipa::path(
    delete,
    path = "/api/v1/channels/{id}",
    tag = "alerts",
    security(("api_key" = [])),
    params(ChannelId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No channel with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_channel(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    delete_channel_by_id(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a channel of the caller's workspace (404 when there is none).
pub(crate) async fn delete_channel_by_id(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found(format!("no channel `{id}` in this workspace"));
    if !ids::has_prefix(id, ids::CHANNEL) {
        return Err(not_found());
    }
    if !state.store.delete_channel(&caller.workspace_id, id).await? {
        return Err(not_found());
    }
    Ok(())
}

/// Send a test alert
///
/// Records a `test` alert for the channel and answers with it; the delivery worker sends it at
/// once. Follow its delivery in `GET /api/v1/alerts`.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{id}/test",
    tag = "alerts",
    security(("api_key" = [])),
    params(ChannelId),
    responses(
        (status = 202, description = "The test alert, pending", body = AlertSchema),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No channel with this id in the caller's workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    let alert = send_test_alert(&state, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(render_alert(&alert))))
}

/// Records a `test` alert for a channel of the caller's workspace and wakes the delivery
/// worker.
pub(crate) async fn send_test_alert(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Alert, ApiError> {
    let channel = load_channel(state, caller, id).await?;
    let now = now_ms();
    let alert = Alert {
        id: ids::new_id(ids::ALERT),
        workspace_id: caller.workspace_id.clone(),
        job_id: None,
        execution_id: None,
        channel_id: channel.id,
        kind: AlertKind::Test,
        status: AlertStatus::Pending,
        attempts: 0,
        error: None,
        facts: AlertFacts {
            channel_name: Some(channel.name),
            ..AlertFacts::default()
        },
        created_at: now,
        next_attempt_at: Some(now),
        delivered_at: None,
    };
    state.store.insert_alert(&alert).await?;
    if let Some(alerts) = &state.alerts {
        alerts.wake();
    }
    Ok(alert)
}

/// List alerts
///
/// Every alert raised in the workspace, newest first: its job, kind, channel, whether it was
/// delivered, and the delivery error.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    security(("api_key" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of alerts", body = AlertList),
        (status = 400, description = "`limit` or `cursor` is not acceptable", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let page = page_request(&params)?;
    let alerts = state.store.list_alerts(&caller.workspace_id, &page).await?;
    let data = alerts.items.iter().map(render_alert).collect();
    Ok(Json(list_body(data, alerts.next_after.as_deref())))
}

/// Read the default alert channels
///
/// The channels that alert for jobs whose `alerts.channels` is empty.
#[utoipa::path(
    get,
    path = "/api/v1/workspace/alert-channels",
    tag = "alerts",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The default channels", body = DefaultChannels),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_default_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let channels = state
        .store
        .default_alert_channels(&caller.workspace_id)
        .await?;
    Ok(Json(json!({ "channels": channels })))
}

/// Set the default alert channels
#[utoipa::path(
    put,
    path = "/api/v1/workspace/alert-channels",
    tag = "alerts",
    security(("api_key" = [])),
    request_body(content = DefaultChannels, description = "The channels, in order"),
    responses(
        (status = 200, description = "The default channels", body = DefaultChannels),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`channels[i]` names no channel of this workspace", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_default_channels(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let DefaultChannels { channels } = from_json(body)?;
    let unique = set_default_channels(&state, &caller, channels).await?;
    Ok(Json(json!({ "channels": unique })))
}

/// Replaces the workspace's default channels (duplicates dropped, order kept); answers them.
pub(crate) async fn set_default_channels(
    state: &AppState,
    caller: &Caller,
    channels: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    check_channel_ids(state, &caller.workspace_id, &channels, "channels").await?;
    let mut unique: Vec<String> = Vec::new();
    for id in channels {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    state
        .store
        .set_default_alert_channels(&caller.workspace_id, &unique)
        .await
        .map_err(|error| match error {
            // A channel deleted between the check and the write.
            cronhook_store::StoreError::NotFound => {
                ApiError::invalid("channels", "names a channel that no longer exists")
            }
            other => other.into(),
        })?;
    Ok(unique)
}
