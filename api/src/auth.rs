//! Who may call: a request naming a host the server is known by (`--allowed-host`), the bearer
//! token (when the server has one, every route but `/healthz` and the page needs it), and, for
//! requests that change something, the page's own origin or one allowed by `--cors-origin`.

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

/// The host names a server listening on `listen` answers to: the loopback names, its own
/// address (unless it is the unspecified one, which no client names) and `extra`, lowercase.
pub fn allowed_hosts(listen: std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec();
    if !listen.ip().is_unspecified() {
        hosts.push(match listen.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        });
    }
    hosts.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
    hosts.dedup();
    hosts
}

/// DNS rebinding: a web page on `evil.example` re-points its name at this server's address and
/// reads it as same-origin; its requests still say `Host: evil.example`. A request without a
/// Host header comes from no browser and passes.
pub async fn refuse_foreign_hosts(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    if let Some(host) = request.headers().get(HOST) {
        let name = host.to_str().ok().map(host_name).map(str::to_ascii_lowercase);
        if !name.is_some_and(|name| state.allowed_hosts.contains(&name)) {
            tracing::warn!(host = ?host, "refused a request for a host this server is not known by");
            return ApiError {
                status: StatusCode::FORBIDDEN,
                code: "forbidden_host",
                message: format!("this server does not answer to the host {host:?} (see --allowed-host)"),
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// `example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`.
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

pub async fn require_token(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        // The scheme's name is case-insensitive (RFC 7235): `bearer` is `Bearer`.
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim_start());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_its_name_without_the_port() {
        assert_eq!(host_name("Bench.example:8080"), "Bench.example");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
    }

    #[test]
    fn the_allowed_hosts_are_the_loopback_names_the_listen_address_and_the_extra_ones() {
        let any = allowed_hosts("0.0.0.0:8080".parse().unwrap(), &["Bench.Example".into()]);
        assert_eq!(any, ["localhost", "127.0.0.1", "[::1]", "bench.example"]);
        let lan = allowed_hosts("10.0.0.7:8080".parse().unwrap(), &[]);
        assert!(lan.contains(&"10.0.0.7".to_string()));
    }
}
