//! The bearer token: when the server has one, every route but `/healthz` needs it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ServeState;
use super::error::ApiError;

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
