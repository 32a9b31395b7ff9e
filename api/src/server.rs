//! The connections: the router served over TCP with the time limits a server on a shared
//! network needs, which `axum::serve` leaves unset. A client gets [`HEADER_READ_TIMEOUT`] from
//! the moment it connects (or from its previous response) to send a request's head, and may
//! leave the body idle for [`BODY_IDLE_TIMEOUT`]; one that opens connections and sends nothing
//! does not hold them for ever. HTTP/1.1 only: hyper-util's automatic version detection reads
//! the first bytes with no time limit, and nothing here needs HTTP/2 without TLS.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Time from a connection's start (or its previous response) to the end of a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause within a request body (an upload from a slow bench connection keeps going).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop` ends, then waits for the requests in flight.
pub async fn serve(listener: TcpListener, router: Router, stop: impl Future<Output = ()>) {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, or the peer gone already: the listener stays.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(
            router.clone().map_request(|request: Request<Incoming>| request.map(axum::body::Body::new)),
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
