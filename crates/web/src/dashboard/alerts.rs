//! Alert channels (list, add, test, delete, the workspace's default channels) and the alert log.
//!
//! Channels are created, tested and deleted through the REST API's own functions
//! (`crate::channels`), so the form and the API validate alike and show URLs masked alike.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use cronhook_core::alerting::ChannelTarget;
use cronhook_core::ids;
use cronhook_store::{AlertStatus, Channel, PageRequest};
use serde_json::{Map, Value};

use super::jobs::upper_first;
use super::session::{self, Viewer};
use super::view;
use super::{Layout, PageError, PageResult, render};
use crate::channels as api;
use crate::{ApiError, AppState};

/// Alerts per page of the log.
const ALERTS_PER_PAGE: u32 = 25;

/// The channel types the form offers: (value, label).
const TYPES: &[(&str, &str)] = &[
    ("email", "Email"),
    ("slack", "Slack"),
    ("webhook", "Webhook"),
    ("discord", "Discord"),
];

/// Every channel of the workspace, in creation order.
async fn all_channels(state: &AppState, workspace_id: &str) -> Result<Vec<Channel>, PageError> {
    let mut channels = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_channels(
                workspace_id,
                &PageRequest {
                    limit: crate::extract::MAX_LIMIT,
                    after,
                },
            )
            .await?;
        channels.extend(page.items);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(channels),
        }
    }
}

struct ChannelRow {
    id: String,
    name: String,
    kind: &'static str,
    /// The recipients, or the URL (masked for Slack and Discord).
    target: String,
    is_default: bool,
}

fn channel_row(channel: &Channel, defaults: &[String]) -> ChannelRow {
    let target = match &channel.target {
        ChannelTarget::Email { to } => to.join(", "),
        other => api::shown_url(other)
            .map(|(_, url)| url)
            .unwrap_or_default(),
    };
    ChannelRow {
        id: channel.id.clone(),
        name: channel.name.clone(),
        kind: channel.target.type_name(),
        target,
        is_default: defaults.contains(&channel.id),
    }
}

/// What the add form shows: typed values (kept as typed) and their errors.
#[derive(Debug, Clone, Default)]
struct NewChannel {
    name: String,
    kind: String,
    to: String,
    webhook_url: String,
    url: String,
    errors: HashMap<&'static str, String>,
}

impl NewChannel {
    fn from_form(form: &HashMap<String, String>) -> Self {
        let get = |name: &str| {
            form.get(name)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        NewChannel {
            name: get("name"),
            kind: get("type"),
            to: get("to"),
            webhook_url: get("webhook_url"),
            url: get("url"),
            errors: HashMap::new(),
        }
    }

    /// The channel as the API takes it.
    fn body(&self) -> Value {
        let mut body = Map::new();
        if !self.name.is_empty() {
            body.insert("name".into(), Value::String(self.name.clone()));
        }
        body.insert("type".into(), Value::String(self.kind.clone()));
        match self.kind.as_str() {
            "email" => {
                let to = self
                    .to
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| Value::String(a.to_owned()))
                    .collect();
                body.insert("to".into(), Value::Array(to));
            }
            "slack" | "discord" => {
                body.insert(
                    "webhook_url".into(),
                    Value::String(self.webhook_url.clone()),
                );
            }
            _ => {
                body.insert("url".into(), Value::String(self.url.clone()));
            }
        }
        Value::Object(body)
    }

    fn error(&self, input: &str) -> Option<String> {
        self.errors.get(input).cloned()
    }
}

/// The input a refused field of the API's belongs beside.
fn input_of(field: &str) -> &'static str {
    match field.split('[').next().unwrap_or_default() {
        "name" => "name",
        "type" => "type",
        "to" => "to",
        "webhook_url" => "webhook_url",
        "url" => "url",
        _ => "",
    }
}

/// The errors of a refused creation, placed beside their inputs.
fn errors_of(error: ApiError) -> Result<HashMap<&'static str, String>, PageError> {
    let mut errors = HashMap::new();
    if error.status() == StatusCode::CONFLICT {
        errors.insert(
            "name",
            "Another channel of this workspace has this name.".to_owned(),
        );
        return Ok(errors);
    }
    if !error.status().is_client_error() || error.status() == StatusCode::NOT_FOUND {
        return Err(error.into());
    }
    let input = error.field().map_or("", input_of);
    let message = if input.is_empty() {
        match error.field() {
            Some(field) if !field.is_empty() => format!("{field}: {}", error.message()),
            _ => error.message().to_owned(),
        }
    } else {
        upper_first(error.message())
    };
    errors.insert(input, message);
    Ok(errors)
}

struct TypeChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "channels.html")]
struct ChannelsPage {
    l: Layout,
    rows: Vec<ChannelRow>,
    types: Vec<TypeChoice>,
    name: String,
    to: String,
    webhook_url: String,
    url: String,
    name_error: Option<String>,
    type_error: Option<String>,
    to_error: Option<String>,
    webhook_url_error: Option<String>,
    url_error: Option<String>,
    general_error: Option<String>,
    /// What was just done, said once.
    notice: Option<String>,
}

async fn channels_page(
    state: &AppState,
    viewer: &Viewer,
    form: NewChannel,
    notice: Option<String>,
) -> Result<ChannelsPage, PageError> {
    let workspace_id = &viewer.user.workspace_id;
    let defaults = state.store.default_alert_channels(workspace_id).await?;
    let rows = all_channels(state, workspace_id)
        .await?
        .iter()
        .map(|channel| channel_row(channel, &defaults))
        .collect();
    let kind = if form.kind.is_empty() {
        "email"
    } else {
        form.kind.as_str()
    };
    Ok(ChannelsPage {
        l: Layout::new("Alert channels", viewer, "channels"),
        rows,
        types: TYPES
            .iter()
            .map(|(value, label)| TypeChoice {
                value,
                label,
                selected: *value == kind,
            })
            .collect(),
        name_error: form.error("name"),
        type_error: form.error("type"),
        to_error: form.error("to"),
        webhook_url_error: form.error("webhook_url"),
        url_error: form.error("url"),
        general_error: form.error(""),
        name: form.name,
        to: form.to,
        webhook_url: form.webhook_url,
        url: form.url,
        notice,
    })
}

/// `GET /channels`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let notice = match query.get("done").map(String::as_str) {
        Some("created") => Some("The channel was added.".to_owned()),
        Some("deleted") => Some("The channel was deleted.".to_owned()),
        Some("defaults") => Some("The default channels were saved.".to_owned()),
        _ => None,
    };
    let page = channels_page(&state, &viewer, NewChannel::default(), notice).await?;
    Ok(render(StatusCode::OK, &page))
}

fn csrf(form: &HashMap<String, String>) -> Option<&str> {
    form.get("csrf").map(String::as_str)
}

/// `POST /channels`: adds a channel, or shows the form again with the errors beside the fields.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let mut values = NewChannel::from_form(&form);
    match api::create_channel_from(&state, &viewer.caller(), values.body()).await {
        Ok(_) => Ok(Redirect::to("/channels?done=created").into_response()),
        Err(error) => {
            values.errors = errors_of(error)?;
            let page = channels_page(&state, &viewer, values, None).await?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

/// `POST /channels/defaults`: the channels that alert for jobs that name none (checkboxes).
pub(crate) async fn save_defaults(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let token = form
        .iter()
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.as_str());
    session::check_form(&viewer, &headers, token)?;
    let chosen = form
        .into_iter()
        .filter(|(key, _)| key == "default")
        .map(|(_, value)| value)
        .collect();
    api::set_default_channels(&state, &viewer.caller(), chosen).await?;
    Ok(Redirect::to("/channels?done=defaults").into_response())
}

/// `POST /channels/{id}/test`: records a test alert (the worker sends it at once) and shows the
/// alert log, where its delivery appears.
pub(crate) async fn test(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    let alert = api::send_test_alert(&state, &viewer.caller(), &id).await?;
    Ok(Redirect::to(&format!("/alerts?tested={}", alert.id)).into_response())
}

#[derive(Template)]
#[template(path = "channel_delete.html")]
struct DeletePage {
    l: Layout,
    id: String,
    name: String,
}

/// `GET /channels/{id}/delete`: the confirmation (works without JavaScript).
pub(crate) async fn delete_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let channel = api::load_channel(&state, &viewer.caller(), &id).await?;
    let page = DeletePage {
        l: Layout::new(format!("Delete {}", channel.name), &viewer, "channels"),
        id: channel.id,
        name: channel.name,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /channels/{id}/delete`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, csrf(&form))?;
    api::delete_channel_by_id(&state, &viewer.caller(), &id).await?;
    Ok(Redirect::to("/channels?done=deleted").into_response())
}

// The alert log.

struct AlertRow {
    id: String,
    when: String,
    job_id: Option<String>,
    job_name: String,
    kind: &'static str,
    channel: String,
    status: &'static str,
    status_class: &'static str,
    attempts: u32,
    error: String,
}

/// The log's table, alone for live refresh or inside the page.
struct AlertLog {
    rows: Vec<AlertRow>,
    older: Option<String>,
    paged: bool,
    /// The fragment URL to poll while a delivery shown is pending (newest page only).
    poll: Option<String>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    l: Layout,
    log: AlertLog,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "alert_log.html")]
struct AlertLogFragment {
    log: AlertLog,
}

async fn alert_log(
    state: &AppState,
    viewer: &Viewer,
    query: &HashMap<String, String>,
) -> Result<AlertLog, PageError> {
    let workspace_id = &viewer.user.workspace_id;
    let after = query
        .get("after")
        .filter(|after| ids::has_prefix(after, ids::ALERT))
        .cloned();
    let page = state
        .store
        .list_alerts(
            workspace_id,
            &PageRequest {
                limit: ALERTS_PER_PAGE,
                after: after.clone(),
            },
        )
        .await?;
    let names: HashMap<String, String> = all_channels(state, workspace_id)
        .await?
        .into_iter()
        .map(|channel| (channel.id, channel.name))
        .collect();
    let pending = page
        .items
        .iter()
        .any(|alert| alert.status == AlertStatus::Pending);
    let rows = page
        .items
        .iter()
        .map(|alert| {
            let channel = match (names.get(&alert.channel_id), &alert.facts.channel_name) {
                (Some(name), _) => name.clone(),
                (None, Some(name)) => format!("{name} (deleted)"),
                (None, None) => "a deleted channel".to_owned(),
            };
            AlertRow {
                id: alert.id.clone(),
                when: view::Stamp(alert.created_at).to_string(),
                job_id: alert.job_id.clone(),
                job_name: alert
                    .facts
                    .job_name
                    .clone()
                    .or_else(|| alert.job_id.clone())
                    .unwrap_or_else(|| "—".to_owned()),
                kind: alert.kind.as_str(),
                channel,
                status: api::status_word(alert.status),
                status_class: match alert.status {
                    AlertStatus::Pending => "pending",
                    AlertStatus::Delivered => "ok",
                    AlertStatus::Failed => "bad",
                },
                attempts: alert.attempts,
                error: alert.error.clone().unwrap_or_default(),
            }
        })
        .collect();
    Ok(AlertLog {
        rows,
        older: page.next_after.map(|next| format!("/alerts?after={next}")),
        paged: after.is_some(),
        poll: (pending && after.is_none()).then(|| "/alerts/live".to_owned()),
    })
}

/// `GET /alerts`: every alert of the workspace, newest first.
pub(crate) async fn log_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    let log = alert_log(&state, &viewer, &query).await?;
    let notice = query
        .get("tested")
        .filter(|id| ids::has_prefix(id, ids::ALERT))
        .map(|_| {
            "A test alert was recorded; it is sent at once and its delivery shows below.".to_owned()
        });
    let page = AlertsPage {
        l: Layout::new("Alert log", &viewer, "alerts"),
        log,
        notice,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `GET /alerts/live`: the newest page of the log alone, for live refresh.
pub(crate) async fn log_fragment(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let log = alert_log(&state, &viewer, &HashMap::new()).await?;
    Ok(render(StatusCode::OK, &AlertLogFragment { log }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_builds_the_api_body() {
        let mut form = HashMap::new();
        form.insert("type".to_owned(), "email".to_owned());
        form.insert(
            "to".to_owned(),
            " a@example.com, ,b@example.com ".to_owned(),
        );
        form.insert("url".to_owned(), "ignored".to_owned());
        let body = NewChannel::from_form(&form).body();
        assert_eq!(
            body,
            serde_json::json!({"type": "email", "to": ["a@example.com", "b@example.com"]})
        );
        form.insert("type".to_owned(), "webhook".to_owned());
        form.insert("name".to_owned(), "ops".to_owned());
        let body = NewChannel::from_form(&form).body();
        assert_eq!(
            body,
            serde_json::json!({"name": "ops", "type": "webhook", "url": "ignored"})
        );
    }

    #[test]
    fn api_fields_map_to_inputs() {
        assert_eq!(input_of("to[2]"), "to");
        assert_eq!(input_of("webhook_url"), "webhook_url");
        assert_eq!(input_of("other"), "");
    }
}
