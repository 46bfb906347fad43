//! The HTTP listener: the router on hyper, with the header-read timeout that `axum::serve`
//! leaves out (it sets no timer, and hyper applies that timeout only with one), so a client
//! that sends nothing, or its headers slowly, cannot hold connections open.
//!
//! HTTP/1.1 only: GitHub, GitLab and Kubernetes probes all speak it, and detecting HTTP/2
//! first would read the connection's first bytes with no timeout at all.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::add_extension::AddExtension;
use tracing::{debug, warn};

/// Serves `app` until `shutdown` resolves, then lets the requests in flight finish (for at
/// most `drain`). A client has `header_read_timeout` to send a request's headers; the body
/// is bounded by the router's own read timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // That one connection's trouble (reset, aborted): take the next.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The peer's address rides on every request (as `axum::serve` does it), for the
        // per-client cap of the webhook intake: a connection's, not a header's.
        let service = AddExtension::new(app.clone(), ConnectInfo(peer));
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("requests still in flight after {drain:?}: no longer waiting for them");
    }
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
