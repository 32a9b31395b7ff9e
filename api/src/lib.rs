//! `autorma serve`: the HTTP API (axum) and the returns-bench page over the results index.
//!
//! The binary wires a [`ServeState`] (the index, the [`stores`], the model's [`Requests`]) and
//! serves [`router`]; `tests/routes.rs` drives the routes in-process. Routes: the results
//! queries (`/v1/results`, `/v1/results/{key}`, `/v1/results.csv`), the review queue and
//! corrections (`/v1/review`), server-sent events (`/v1/events`), uploads into the inbox
//! (`/v1/uploads`), `/v1/classify`, `/v1/model`, `/healthz`, `/readyz`, `/openapi.json`; JSON
//! errors, the bearer token, body limits. What fills the index (an output folder, the topics,
//! the bucket) is in [`feed`].

mod auth;
mod classify;
mod error;
pub mod export;
pub mod feed;
mod http_metrics;
mod openapi;
mod page;
mod photo_body;
mod review;
mod routes;
pub mod server;
pub mod stores;
mod uploads;

use std::sync::Arc;

pub use auth::allowed_hosts;
pub use error::ApiError;
pub use review::EventStreams;

use autorma_classifier::Requests;
use tokio::sync::broadcast;

use autorma_sink::index::ResultIndex;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method};
use axum::routing::{get, post};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What the handlers share.
pub struct ServeState {
    pub index: Arc<ResultIndex>,
    /// Where uploads, photos and corrections are (folders, or the bucket and topics).
    pub stores: stores::Stores,
    /// Largest request body (uploads, classify).
    pub max_body_bytes: usize,
    /// Most pixels the photos of one `/v1/classify` request may decode into.
    pub max_request_pixels: u64,
    /// Each result as it is indexed, for `/v1/events`.
    pub events: broadcast::Sender<feed::FeedEvent>,
    /// `POST /v1/classify`, and the model being served.
    pub requests: Requests,
    /// Web origins (besides the server's own) that may call the API from a browser.
    pub cors_origins: Vec<HeaderValue>,
    /// When set, every route but `/healthz` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Whether the index has caught up, and the feed's last error.
    pub feed: Arc<feed::FeedStatus>,
    /// True once the server is asked to stop: open event streams end, so the graceful
    /// shutdown does not wait for the pages still connected.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The host names requests may name ([`auth::allowed_hosts`]).
    pub allowed_hosts: Vec<String>,
    /// The open `/v1/events` streams, and their cap.
    pub event_streams: EventStreams,
}

impl ServeState {
    /// The model new photos are classified by now.
    pub fn model_info(&self) -> ModelInfo {
        let serving = self.requests.models().current();
        ModelInfo {
            name: serving.model.name.clone(),
            version: serving.model.version.clone(),
            sha256: serving.model.sha256.to_ascii_lowercase(),
            execution_provider: serving.execution_provider.to_string(),
            classes: serving.classes.to_vec(),
        }
    }
}

/// `GET /v1/model`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub execution_provider: String,
    /// The labels a correction may give.
    pub classes: Vec<String>,
}

/// The routes; `state.cors_origins` may call them from a browser (none: CORS off).
pub fn router(state: Arc<ServeState>) -> Router {
    let api = Router::new()
        .route("/readyz", get(routes::readyz))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/model", get(routes::model))
        .route("/v1/results", get(routes::list_results))
        .route("/v1/results.csv", get(routes::download_csv))
        .route("/v1/results/{*key}", get(routes::get_result))
        .route("/v1/photos/{*key}", get(routes::get_photo))
        .route("/v1/catalogue/{sku}", get(routes::get_catalogue_photo))
        .route("/v1/review", get(review::queue))
        .route("/v1/review/{*key}", post(review::correct))
        .route("/v1/events", get(review::events))
        .route("/v1/uploads", post(uploads::upload).layer(DefaultBodyLimit::max(state.max_body_bytes)))
        .route("/v1/classify", post(classify::classify).layer(DefaultBodyLimit::max(state.max_body_bytes)))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::refuse_foreign_origins));
    let cors_origins = state.cors_origins.clone();
    let router = Router::new()
        .route("/healthz", get(routes::healthz))
        .merge(page::routes())
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::refuse_foreign_hosts))
        .layer(axum::middleware::from_fn(http_metrics::record))
        .with_state(state);
    if cors_origins.is_empty() {
        return router;
    }
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(cors_origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE]),
    )
}
