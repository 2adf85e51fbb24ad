//! Sign-in, sign-out and first-run setup.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cronhook_core::ids;
use cronhook_store::{User, Workspace};

use super::session::{self, FORM_COOKIE, SESSION_COOKIE, Viewer};
use super::{Layout, PageResult, render};
use crate::AppState;
use crate::auth::hash_api_key;
use crate::jobs::now_ms;

/// The one message for a wrong email or a wrong password: which was wrong is not revealed.
pub(crate) const WRONG_CREDENTIALS: &str = "Email or password is incorrect";
/// The shortest password accepted (as `cronhook users create`).
const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    email: String,
    next: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    l: Layout,
    email: String,
    workspace: String,
    email_error: Option<String>,
    password_error: Option<String>,
    workspace_error: Option<String>,
}

/// Where to go after signing in: a local path only (never another site).
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && !next.starts_with("/login") =>
        {
            next.clone()
        }
        _ => "/".to_owned(),
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> PageResult {
    if session::viewer(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(&safe_next(query.get("next"))).into_response());
    }
    if !state.store.has_users().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let (token, cookie) = session::signed_out_form_token(&headers);
    let page = LoginPage {
        l: Layout::signed_out("Sign in", token),
        email: String::new(),
        next: safe_next(query.get("next")),
        error: None,
    };
    Ok(with_cookie(render(StatusCode::OK, &page), cookie))
}

/// `POST /login`: checks the password; signs in with a new session, or shows the form again.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_signed_out_form(&headers, form.get("csrf").map(String::as_str))?;
    let email = form
        .get("email")
        .map(|email| email.trim().to_owned())
        .unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let next = safe_next(form.get("next"));
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    if let Err(wait) = state.limits.login.check(address, &email) {
        let seconds = crate::limits::retry_after_secs(wait);
        let (token, cookie) = session::signed_out_form_token(&headers);
        let page = LoginPage {
            l: Layout::signed_out("Sign in", token),
            email,
            next,
            error: Some(format!(
                "Too many sign-in attempts. Wait {seconds} seconds, then try again."
            )),
        };
        let mut response = with_cookie(render(StatusCode::TOO_MANY_REQUESTS, &page), cookie);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let user = if email.is_empty() {
        None
    } else {
        state.store.user_by_email(&email).await?
    };
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let valid = session::verify_password(password, hash).await;
    match user {
        Some(user) if valid => {
            let cookie = session::start_session(&state, &headers, &user).await?;
            tracing::info!(user_id = %user.id, "signed in to the dashboard");
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response.headers_mut().append(
                header::SET_COOKIE,
                session::clear_cookie(&headers, FORM_COOKIE),
            );
            Ok(response)
        }
        _ => {
            let (token, cookie) = session::signed_out_form_token(&headers);
            let page = LoginPage {
                l: Layout::signed_out("Sign in", token),
                email,
                next,
                error: Some(WRONG_CREDENTIALS.to_owned()),
            };
            Ok(with_cookie(render(StatusCode::UNAUTHORIZED, &page), cookie))
        }
    }
}

/// `POST /logout`: ends the session here and in the database.
pub(crate) async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_form(&viewer, &headers, form.get("csrf").map(String::as_str))?;
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE) {
        state.store.delete_session(&hash_api_key(&token)).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::clear_cookie(&headers, SESSION_COOKIE),
    );
    Ok(response)
}

/// `GET /setup`: the first-run page, offered only while no user exists at all.
pub(crate) async fn setup_form(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if state.store.has_users().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let (token, cookie) = session::signed_out_form_token(&headers);
    let page = SetupPage {
        l: Layout::signed_out("Set up cronhook", token),
        email: String::new(),
        workspace: "default".to_owned(),
        email_error: None,
        password_error: None,
        workspace_error: None,
    };
    Ok(with_cookie(render(StatusCode::OK, &page), cookie))
}

/// Whether `slug` is a workspace slug (as `cronhook keys create --workspace` accepts).
fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

/// `POST /setup`: creates the first user (an admin of their workspace) and signs them in.
pub(crate) async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    session::check_signed_out_form(&headers, form.get("csrf").map(String::as_str))?;
    if state.store.has_users().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let email = field("email").to_ascii_lowercase();
    let workspace = field("workspace");
    let password = form.get("password").cloned().unwrap_or_default();
    let confirm = form.get("confirm").cloned().unwrap_or_default();
    let mut page = SetupPage {
        l: Layout::signed_out("Set up cronhook", field("csrf")),
        email: email.clone(),
        workspace: workspace.clone(),
        email_error: None,
        password_error: None,
        workspace_error: None,
    };
    if !email.contains('@') || email.len() > 254 {
        page.email_error = Some("Enter an email address, such as ops@example.com.".to_owned());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        page.password_error = Some(format!(
            "The password must be at least {MIN_PASSWORD_CHARS} characters."
        ));
    } else if password != confirm {
        page.password_error = Some("The two passwords differ.".to_owned());
    }
    if !valid_slug(&workspace) {
        page.workspace_error = Some(
            "Use lowercase letters, digits and dashes (at most 63), such as `acme`.".to_owned(),
        );
    }
    if page.email_error.is_some() || page.password_error.is_some() || page.workspace_error.is_some()
    {
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let now = now_ms();
    let proposed = Workspace {
        id: ids::new_id(ids::WORKSPACE),
        slug: workspace,
        signing_secret: cronhook_executor::signing::new_secret(),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: now,
    };
    let user = User {
        id: ids::new_id(ids::USER),
        workspace_id: proposed.id.clone(),
        email,
        password_hash: session::hash_password(password).await?,
        created_at: now,
    };
    let Some(user) = state.store.create_first_user(&proposed, &user).await? else {
        // Somebody finished setup first: sign in instead.
        return Ok(Redirect::to("/login").into_response());
    };
    tracing::info!(user_id = %user.id, email = %user.email, "first dashboard user created");
    let cookie = session::start_session(&state, &headers, &user).await?;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        let next = |text: &str| safe_next(Some(&text.to_owned()));
        assert_eq!(next("/jobs/job_1"), "/jobs/job_1");
        assert_eq!(next("//evil.test/"), "/");
        assert_eq!(next("https://evil.test/"), "/");
        assert_eq!(next("/\\evil.test"), "/");
        assert_eq!(safe_next(None), "/");
    }
}
