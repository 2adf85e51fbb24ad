//! `/api/v1/nodes`: the `cronhook serve` processes sharing this database, as they report
//! themselves (admin scope).

use axum::Json;
use axum::extract::State;
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::render::timestamp;
use crate::schemas::{self, Problem};

/// Nodes report every few seconds; one silent for longer than this is shown as not alive.
const ALIVE_WITHIN: TimeDelta = TimeDelta::seconds(15);
/// Nodes silent for longer than this are left out of the list.
const LISTED_WITHIN: TimeDelta = TimeDelta::hours(1);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_nodes))
}

/// List the nodes
///
/// Every `cronhook serve` process heard from in the last hour: its id (the name it holds leases
/// under), roles, version, start and last heartbeat; `alive` when heard from in the last 15 s.
/// Needs an `admin` key.
#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "operations",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The nodes", body = schemas::NodeList),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's scope is not `admin`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_nodes(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let now = Utc::now();
    let nodes = state.store.nodes(now - LISTED_WITHIN).await?;
    let data: Vec<Value> = nodes
        .iter()
        .map(|node| {
            json!({
                "id": node.id,
                "name": node.name,
                "roles": node.roles,
                "version": node.version,
                "started_at": timestamp(node.started_at),
                "last_heartbeat_at": timestamp(node.last_heartbeat_at),
                "alive": now - node.last_heartbeat_at <= ALIVE_WITHIN,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
