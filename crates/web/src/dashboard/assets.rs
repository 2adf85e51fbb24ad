//! The dashboard's static files, embedded at compile time so the binary runs from anywhere.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The vendored htmx, with its pinned version in the path (so it may be cached for good).
pub(crate) const HTMX_PATH: &str = "vendor/htmx-2.0.4/htmx.min.js";

/// (path under `/static/`, content type, bytes, immutable)
const FILES: [(&str, &str, &[u8], bool); 4] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../web/static/app.css"),
        false,
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../web/static/app.js"),
        false,
    ),
    (
        HTMX_PATH,
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../web/static/vendor/htmx-2.0.4/htmx.min.js"),
        true,
    ),
    (
        "vendor/htmx-2.0.4/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../../web/static/vendor/htmx-2.0.4/LICENSE"),
        true,
    ),
];

/// `GET /static/{path}`.
pub(crate) async fn serve(Path(path): Path<String>) -> Response {
    let Some((_, content_type, bytes, immutable)) =
        FILES.iter().find(|(name, ..)| *name == path.as_str())
    else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let cache = if *immutable {
        "public, max-age=31536000, immutable"
    } else {
        // Our own files change with the binary: revalidate, cheaply, after a short while.
        "public, max-age=300"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        *bytes,
    )
        .into_response()
}
