//! The returns-bench page (`/`): plain HTML, JavaScript and CSS, built into the binary, so it
//! needs no build step and no files beside the binary. It holds no data: it is served without
//! the token, and asks for one when the API refuses it.

use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;

use super::ServeState;

/// The page talks only to this server; thumbnails of local files are `blob:` URLs; no other
/// site may frame it (a framed page could be tricked into one-click relabels).
const CSP: &str = "default-src 'self'; img-src 'self' blob:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<Arc<ServeState>> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", include_str!("page/index.html"))))
        .route("/assets/app.js", get(|| asset("text/javascript; charset=utf-8", include_str!("page/app.js"))))
        .route("/assets/style.css", get(|| asset("text/css; charset=utf-8", include_str!("page/style.css"))))
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // A new binary may bring a new page: revalidate rather than run a stale script.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
