//! HTTP requests in the metrics: count and duration by route (the pattern, not the path, so
//! keys do not become labels), method and status.

use std::time::Instant;

use autorma_core::metrics::metrics;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn record(route: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = route.map_or_else(|| "unmatched".to_string(), |r| r.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics().record_http(route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}
