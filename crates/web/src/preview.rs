//! `GET /api/v1/schedule/preview`: the next fire times of a cron expression, in words and in
//! instants, without creating anything.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use cronhook_core::{CompiledSchedule, ScheduleSpec};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Params;
use crate::render::timestamp;
use crate::schemas::{self, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The seed for `H` in previews: there is no job id yet.
const PREVIEW_SEED: &str = "preview";
/// How many instants a preview lists unless asked.
const DEFAULT_COUNT: usize = 5;
/// The most instants a preview lists.
const MAX_COUNT: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(preview))
}

/// Preview a schedule
///
/// The next `count` fire times of a cron expression after `from`, in words and instants, without
/// creating anything.
#[utoipa::path(
    get,
    path = "/api/v1/schedule/preview",
    tag = "schedule",
    security(("api_key" = [])),
    params(schemas::PreviewQuery),
    responses(
        (status = 200, description = "The expression in words and its next fire times", body = schemas::SchedulePreview),
        (status = 400, description = "`count` or `from` is not acceptable; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No API key, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The expression or time zone is invalid; `field` names it and `detail` says why", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn preview(
    State(_state): State<AppState>,
    _caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    // Whole seconds, so `@every` previews anchored at now read cleanly.
    Ok(Json(preview_body(&params, Utc::now().trunc_subsecs(0))?))
}

/// The preview for the query `params`, with `now` as the default start.
pub(crate) fn preview_body(params: &Params, now: DateTime<Utc>) -> Result<Value, ApiError> {
    let cron = params
        .get("cron")
        .filter(|cron| !cron.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "cron",
                "is required (a cron expression such as `0 3 * * *`)",
            )
        })?;
    let timezone = params.get("timezone").unwrap_or("UTC");
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ApiError::invalid(
            "timezone",
            format!("`{timezone}` is not an IANA time zone (such as `Europe/Berlin` or `UTC`)"),
        ));
    }
    let count = match params.get("count") {
        None => DEFAULT_COUNT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|count| (1..=MAX_COUNT).contains(count))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "count",
                    format!("`{text}` is not a whole number between 1 and {MAX_COUNT}"),
                )
            })?,
    };
    let from = match params.get("from") {
        None => now,
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|from| from.with_timezone(&Utc))
            .map_err(|error| {
                ApiError::bad_parameter(
                    "from",
                    format!("`{text}` is not an RFC 3339 timestamp: {error}"),
                )
            })?,
    };
    let spec: ScheduleSpec = serde_json::from_value(json!({"cron": cron, "timezone": timezone}))
        .map_err(|error| ApiError::invalid("cron", format!("is not a valid schedule: {error}")))?;
    let schedule = CompiledSchedule::compile(&spec, PREVIEW_SEED, from).map_err(|error| {
        let field = error.field.rsplit('.').next().unwrap_or("cron").to_owned();
        let field = if field == "timezone" {
            field
        } else {
            "cron".to_owned()
        };
        ApiError::invalid(field, error.message)
    })?;
    let zone = schedule.timezone();
    let next = schedule.upcoming(from, count);
    Ok(json!({
        "description": schedule.describe(),
        "timezone": zone.name(),
        "next": next.iter().map(|at| timestamp(*at)).collect::<Vec<_>>(),
        "next_local": next
            .iter()
            .map(|at| at.with_timezone(&zone).to_rfc3339_opts(SecondsFormat::AutoSi, false))
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn previews_list_local_and_utc_times() {
        let body = preview_body(
            &params(&[
                ("cron", "0 3 * * *"),
                ("timezone", "Europe/Berlin"),
                ("count", "3"),
                ("from", "2026-11-26T12:00:00Z"),
            ]),
            Utc::now(),
        )
        .expect("preview");
        assert_eq!(body["timezone"], "Europe/Berlin");
        assert_eq!(body["next"][0], "2026-11-27T02:00:00Z");
        assert_eq!(body["next_local"][0], "2026-11-27T03:00:00+01:00");
        assert_eq!(body["next"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn bad_previews_name_the_parameter() {
        let field = |pairs: &[(&str, &str)]| {
            preview_body(&params(pairs), Utc::now())
                .expect_err("refused")
                .body()["field"]
                .clone()
        };
        assert_eq!(field(&[("cron", "nope")]), "cron");
        assert_eq!(field(&[]), "cron");
        assert_eq!(
            field(&[("cron", "* * * * *"), ("timezone", "Mars/Olympus")]),
            "timezone"
        );
        assert_eq!(field(&[("cron", "* * * * *"), ("count", "0")]), "count");
        assert_eq!(field(&[("cron", "* * * * *"), ("count", "101")]), "count");
        assert_eq!(
            field(&[("cron", "* * * * *"), ("from", "yesterday")]),
            "from"
        );
    }
}
