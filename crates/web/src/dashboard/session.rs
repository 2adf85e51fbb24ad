//! Dashboard accounts: passwords (argon2id, hashed a few at a time off the async threads),
//! sessions in the database behind a random cookie token, and CSRF checks on every form.
//!
//! The cookie carries 256 random bits; the store keeps only their SHA-256, so a copy of the
//! database signs nobody in. A session ends after [`IDLE`] without use or [`ABSOLUTE`] after
//! sign-in, whichever comes first; signing in always starts a new session (rotation).

use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use cronhook_store::{Session, User};
use rand::RngCore as _;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::auth::hash_api_key;
use crate::jobs::now_ms;

/// The cookie that holds the session token.
pub(crate) const SESSION_COOKIE: &str = "cronhook_session";
/// The cookie that holds the sign-in form's CSRF token (there is no session yet).
pub(crate) const FORM_COOKIE: &str = "cronhook_form";
/// A session unused for this long ends.
pub(crate) const IDLE: Duration = Duration::hours(12);
/// A session ends this long after sign-in, however much it is used.
pub(crate) const ABSOLUTE: Duration = Duration::days(7);
/// A session's idle expiry is moved forward at most this often (not a write per request).
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// At most this many password hashes are computed at once: each takes ~19 MiB and tens of
/// milliseconds of a core, so a burst of sign-ins must queue rather than starve the server.
static HASHING: Semaphore = Semaphore::const_new(2);

/// A fresh random token: 256 bits, base64url.
pub(crate) fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The argon2id PHC string of `password` (bounded, off the async threads).
pub async fn hash_password(password: String) -> Result<String, crate::ApiError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|error| crate::ApiError::internal(error.to_string()))?;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::PasswordHasher as _;
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| crate::ApiError::internal(format!("hashing a password: {error}")))
    })
    .await
    .map_err(crate::ApiError::internal)?
}

/// A valid argon2id hash of a password nobody knows: verified against when the email is
/// unknown, so a wrong email costs as long as a wrong password (no user enumeration by timing).
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::PasswordHasher as _;
        argon2::Argon2::default()
            .hash_password(new_token().as_bytes())
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Whether `password` matches the PHC string `hash` (`None`: check against a decoy and fail).
pub(crate) async fn verify_password(password: String, hash: Option<String>) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::PasswordVerifier as _;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        let matches = argon2::Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// Whether cookies must be `Secure`: the dashboard's public address is https, or this request
/// came over https (directly or through a proxy that says so).
fn secure(headers: &HeaderMap) -> bool {
    static PUBLIC_HTTPS: OnceLock<bool> = OnceLock::new();
    let public = *PUBLIC_HTTPS.get_or_init(|| {
        std::env::var("CRONHOOK_PUBLIC_URL")
            .is_ok_and(|url| url.trim().to_ascii_lowercase().starts_with("https://"))
    });
    let header_is = |name: &str, prefix: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().to_ascii_lowercase().starts_with(prefix))
    };
    public || header_is("x-forwarded-proto", "https") || header_is("origin", "https://")
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when served over https.
pub(crate) fn set_cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: Option<Duration>,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", max_age.num_seconds().max(0)));
    }
    if secure(headers) {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that removes cookie `name`.
pub(crate) fn clear_cookie(headers: &HeaderMap, name: &str) -> HeaderValue {
    set_cookie(headers, name, "", Some(Duration::zero()))
}

/// Starts a session for `user` and returns the `Set-Cookie` header value that carries it.
pub(crate) async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
) -> Result<HeaderValue, crate::ApiError> {
    let now = now_ms();
    // Rotation: whatever session this browser had ends here.
    if let Some(old) = cookie(headers, SESSION_COOKIE) {
        state.store.delete_session(&hash_api_key(&old)).await?;
    }
    state.store.delete_expired_sessions(now).await?;
    let token = new_token();
    let session = Session {
        token_hash: hash_api_key(&token),
        user_id: user.id.clone(),
        workspace_id: user.workspace_id.clone(),
        csrf_token: new_token(),
        created_at: now,
        idle_expires_at: now + IDLE,
        expires_at: now + ABSOLUTE,
    };
    state.store.insert_session(&session).await?;
    Ok(set_cookie(headers, SESSION_COOKIE, &token, Some(ABSOLUTE)))
}

/// The signed-in user of a request, with their session. Every dashboard page that shows a
/// workspace's objects takes one, so it is scoped to `user.workspace_id`.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub user: User,
    pub session: Session,
}

impl Viewer {
    /// The API's caller for this viewer: the same workspace scoping as an API key's.
    pub(crate) fn caller(&self) -> crate::auth::Caller {
        crate::auth::Caller {
            workspace_id: self.user.workspace_id.clone(),
        }
    }
}

/// Why a request has no viewer: not signed in (sent to the sign-in page), or the database
/// failed.
pub(crate) enum NoViewer {
    SignIn { htmx: bool, next: String },
    Failed(super::PageError),
}

impl IntoResponse for NoViewer {
    fn into_response(self) -> Response {
        match self {
            // htmx follows `HX-Redirect` with a full page load instead of swapping a form in.
            NoViewer::SignIn { htmx: true, .. } => {
                (StatusCode::UNAUTHORIZED, [("HX-Redirect", "/login")]).into_response()
            }
            NoViewer::SignIn { htmx: false, next } => {
                let target = if next == "/" || next.is_empty() {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", super::view::query_escape(&next))
                };
                Redirect::to(&target).into_response()
            }
            NoViewer::Failed(error) => error.into_response(),
        }
    }
}

/// Looks up the request's session (and keeps it alive), or `None` when it has none.
pub(crate) async fn viewer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Viewer>, crate::ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let now = now_ms();
    let hash = hash_api_key(&token);
    let Some((session, user)) = state.store.session_by_token_hash(&hash, now).await? else {
        return Ok(None);
    };
    let last_use = session.idle_expires_at - IDLE;
    if now - last_use >= TOUCH_EVERY {
        state.store.touch_session(&hash, now + IDLE).await?;
    }
    Ok(Some(Viewer { user, session }))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = NoViewer;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoViewer> {
        match viewer(state, &parts.headers).await {
            Ok(Some(viewer)) => Ok(viewer),
            Ok(None) => Err(NoViewer::SignIn {
                htmx: parts.headers.contains_key("hx-request"),
                next: if parts.method == Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map(|path| path.as_str().to_owned())
                        .unwrap_or_default()
                } else {
                    String::new()
                },
            }),
            Err(error) => Err(NoViewer::Failed(error.into())),
        }
    }
}

/// Byte-wise comparison that takes the same time wherever the first difference is.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Refuses a cross-site form post: the browser says so (`Sec-Fetch-Site`), or its `Origin`
/// names another host than the one it posted to.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), super::PageError> {
    let forbidden = || super::PageError::forbidden("This form was sent from another site.");
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbidden());
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != "null"
    {
        let origin_host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .trim_end_matches('/');
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(forbidden());
        }
    }
    Ok(())
}

/// Checks a signed-in form post: same origin, and the session's CSRF token in field `csrf`.
pub(crate) fn check_form(
    viewer: &Viewer,
    headers: &HeaderMap,
    sent: Option<&str>,
) -> Result<(), super::PageError> {
    check_same_origin(headers)?;
    match sent {
        Some(sent) if same_secret(sent, &viewer.session.csrf_token) => Ok(()),
        _ => Err(super::PageError::forbidden(
            "This form has expired. Go back, reload the page and try again.",
        )),
    }
}

/// Checks a signed-out form post (sign-in, setup): same origin, and the token of the
/// [`FORM_COOKIE`] cookie in field `csrf` (double submit).
pub(crate) fn check_signed_out_form(
    headers: &HeaderMap,
    sent: Option<&str>,
) -> Result<(), super::PageError> {
    check_same_origin(headers)?;
    match (cookie(headers, FORM_COOKIE), sent) {
        (Some(expected), Some(sent)) if !expected.is_empty() && same_secret(sent, &expected) => {
            Ok(())
        }
        _ => Err(super::PageError::forbidden(
            "This form has expired (or cookies are off). Reload the page and try again.",
        )),
    }
}

/// The form token for a signed-out page: the browser's existing one, or a new one to set.
pub(crate) fn signed_out_form_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, FORM_COOKIE).filter(|token| token.len() >= 32) {
        Some(token) => (token, None),
        None => {
            let token = new_token();
            let set = set_cookie(headers, FORM_COOKIE, &token, None);
            (token, Some(set))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits() {
        let token = new_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).expect("base64url").len(), 32);
        assert_ne!(token, new_token());
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; cronhook_session=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let mut headers = HeaderMap::new();
        let plain = set_cookie(&headers, "n", "v", Some(Duration::hours(1)));
        let plain = plain.to_str().expect("ascii");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(plain.contains("Max-Age=3600"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = set_cookie(&headers, "n", "v", None);
        assert!(secure.to_str().expect("ascii").ends_with("; Secure"));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("cronhook.test:8080"));
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://cronhook.test:8080"),
        );
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        assert!(check_same_origin(&headers).is_err());
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_same_origin(&headers).is_err());
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse".to_owned())
            .await
            .expect("hashed");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".to_owned(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse".to_owned(), Some(hash)).await);
        assert!(!verify_password("anything".to_owned(), None).await);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
