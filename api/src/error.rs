//! Errors as JSON: `{"error": {"code": "...", "message": "..."}}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable (`not_found`, `bad_request`, `unauthorized`, `internal`).
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into() }
    }

    /// A request body that could not be read whole (`detail` says why): 408 `request_timeout`
    /// when it stopped coming (the server's body idle timeout, found among the causes), 413
    /// `too_large` over the body limit, else 400.
    pub fn unreadable_body(detail: String, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = std::iter::successors(Some(error), |e| e.source());
        if causes.any(|e| e.is::<tower_http::timeout::TimeoutError>()) {
            Self { status: StatusCode::REQUEST_TIMEOUT, code: "request_timeout", message: detail }
        } else if detail.contains("length limit") {
            Self { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", message: detail }
        } else {
            Self::bad_request(detail)
        }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "this server needs `Authorization: Bearer <token>` (the token it was started with)".into(),
        }
    }
}

impl<E: std::error::Error> From<E> for ApiError {
    /// Anything else is the server's fault: logged whole, answered briefly.
    fn from(e: E) -> Self {
        tracing::error!(error = %e, "request failed");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message: e.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
