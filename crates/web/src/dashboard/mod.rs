//! The web dashboard: server-rendered pages (askama templates in `web/templates`), progressively
//! enhanced with htmx (live schedule preview, live refresh of running executions). Everything
//! but the live updates works without JavaScript.
//!
//! Architecture invariant: every page that shows or changes a workspace's objects takes a
//! [`session::Viewer`] and passes its workspace to the store, exactly as the REST API passes an
//! API key's, so another workspace's ids answer the 404 page. Every POST checks the form's CSRF
//! token and the request's origin. Jobs are created and changed through the REST API's own
//! functions (`crate::jobs`), so the form and the API validate alike.

mod account;
mod alerts;
mod assets;
mod executions;
mod jobs;
mod keys;
pub(crate) mod session;
pub(crate) mod view;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use cronhook_store::StoreError;

use crate::{ApiError, AppState};

/// The dashboard's routes (plain axum routes: they are not part of the OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(jobs::list))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route("/setup", get(account::setup_form).post(account::setup))
        .route("/jobs/new", get(jobs::new_form).post(jobs::create))
        .route("/jobs/{id}", get(jobs::page))
        .route("/jobs/{id}/history", get(jobs::history_fragment))
        .route("/jobs/{id}/edit", get(jobs::edit_form).post(jobs::update))
        .route("/jobs/{id}/run", post(jobs::run))
        .route("/jobs/{id}/pause", post(jobs::pause))
        .route("/jobs/{id}/resume", post(jobs::resume))
        .route(
            "/jobs/{id}/delete",
            get(jobs::delete_form).post(jobs::delete),
        )
        .route("/schedule/preview", get(jobs::preview_fragment))
        .route("/executions/{id}", get(executions::page))
        .route("/executions/{id}/live", get(executions::live_fragment))
        .route("/executions/{id}/replay", post(executions::replay))
        .route("/channels", get(alerts::page).post(alerts::create))
        .route("/channels/defaults", post(alerts::save_defaults))
        .route("/channels/{id}/test", post(alerts::test))
        .route(
            "/channels/{id}/delete",
            get(alerts::delete_form).post(alerts::delete),
        )
        .route("/alerts", get(alerts::log_page))
        .route("/alerts/live", get(alerts::log_fragment))
        .route("/keys", get(keys::page).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/static/{*path}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers every dashboard answer carries: pages are private (not cached), not framed, and run
/// only this server's scripts.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// What every page's frame needs: the title, who is signed in, the form token, the menu.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub title: String,
    /// The signed-in user's email; `None` on the sign-in and setup pages.
    pub email: Option<String>,
    /// The session's CSRF token, for the sign-out form and every other form.
    pub csrf: String,
    /// Which menu entry is current: `jobs`, `channels`, `alerts`, `keys`, or empty.
    pub section: &'static str,
}

impl Layout {
    pub(crate) fn new(
        title: impl Into<String>,
        viewer: &session::Viewer,
        section: &'static str,
    ) -> Self {
        Layout {
            title: title.into(),
            email: Some(viewer.user.email.clone()),
            csrf: viewer.session.csrf_token.clone(),
            section,
        }
    }

    pub(crate) fn signed_out(title: impl Into<String>, csrf: String) -> Self {
        Layout {
            title: title.into(),
            email: None,
            csrf,
            section: "",
        }
    }
}

/// Renders a template into an HTML answer (a template error is logged and answered 500).
pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "rendering a dashboard page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>An internal error occurred.</p>"),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    l: Layout,
    heading: &'a str,
    message: &'a str,
}

/// A page that could not be shown: rendered as an error page with the right status.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(crate) fn not_found() -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: "There is nothing here, or it belongs to another workspace.".to_owned(),
        }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        if status.is_server_error() {
            error.log_source();
        }
        let message = match status {
            StatusCode::NOT_FOUND => PageError::not_found().message,
            StatusCode::SERVICE_UNAVAILABLE => {
                "The database is unavailable right now. Try again shortly.".to_owned()
            }
            status if status.is_server_error() => "An internal error occurred.".to_owned(),
            _ => error.message().to_owned(),
        };
        PageError { status, message }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Refused",
            StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
            status if status.is_server_error() => "Something went wrong",
            _ => "Cannot do that",
        };
        render(
            self.status,
            &ErrorPage {
                l: Layout::signed_out(heading, String::new()),
                heading,
                message: &self.message,
            },
        )
    }
}

/// The result of a dashboard handler.
pub(crate) type PageResult = Result<Response, PageError>;
