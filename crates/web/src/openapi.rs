//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations. The API's routes are registered through [`api_router`], which builds the axum
//! routes and the document's paths from the same annotations, so the two cannot drift.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where Swagger UI renders it.
pub const DOCS_PATH: &str = "/docs";
/// The name of the API-key security scheme in the document.
pub const SECURITY_SCHEME: &str = "api_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cronhook",
        description = "Calls URLs on cron schedules: jobs, their executions and attempts.\n\n\
            Authenticate with `Authorization: Bearer <api key>` (`cronhook keys create`). A key sees \
            only its own workspace; another workspace's ids answer 404. Errors are \
            `application/problem+json` (RFC 9457) whose `detail` names the field. Lists are \
            `{\"data\": [...], \"next_cursor\": ...}` with `?limit=` and `?cursor=`. Timestamps are \
            RFC 3339 UTC.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Jobs: what to call, when, and how to judge the answer."),
        (name = "executions", description = "Executions of jobs and their attempts."),
        (name = "schedule", description = "Cron expressions, previewed."),
        (name = "alerts", description = "Alert channels, the alert log, and the workspace's default channels."),
        (name = "workspace", description = "The caller's workspace and its webhook signing secret."),
        (name = "keys", description = "API keys: scoped (read, write, admin), shown once, revocable."),
        (name = "operations", description = "Probes, metrics and this document; no key needed."),
    )
)]
struct ApiDoc;

/// Adds the bearer API-key scheme that authenticated operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`chk_...`) as a bearer token: `Authorization: Bearer <key>`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every documented route of the API, with its part of the document.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::health::router())
        .merge(crate::operations::router())
        .merge(crate::jobs::router())
        .merge(crate::executions::router())
        .merge(crate::preview::router())
        .merge(crate::workspace::router())
        .merge(crate::channels::router())
        .merge(crate::nodes::router())
        .merge(crate::keys::router())
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The document as served: JSON, built once.
pub(crate) fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .unwrap_or_else(|error| format!(r#"{{"error": "{error}"}}"#))
    })
}
