//! Who may call: the bearer token (when the server has one, every route but `/healthz` and the
//! page needs it), and, for requests that change something, the page's own origin or one
//! allowed by `--cors-origin`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ServeState;
use super::error::ApiError;

/// Browsers send a cross-site form post or upload without asking first (no CORS preflight):
/// without this, any web page a bench user opens could post to a server on their network.
pub async fn refuse_foreign_origins(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(origin) = request.headers().get(ORIGIN).filter(|_| changes) {
        let host = request.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let same =
            origin.to_str().is_ok_and(|o| o.strip_prefix("http://").or(o.strip_prefix("https://")) == Some(host));
        if !same && !state.cors_origins.contains(origin) {
            return ApiError {
                status: StatusCode::FORBIDDEN,
                code: "forbidden_origin",
                message: format!("requests from {origin:?} are not allowed (see --cors-origin)"),
            }
            .into_response();
        }
    }
    next.run(request).await
}

pub async fn require_token(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given =
            request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compared in full whatever the first difference, so timing tells nothing.
        let matches = given.is_some_and(|g| {
            g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if !matches {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}
