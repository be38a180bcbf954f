//! The scheduler's listener: accepts connections under a cap (in all, and
//! for anonymous ones per peer address, see `admission`), gives each a
//! bounded time for its TLS handshake and for every request's headers
//! (which also bounds how long a connection may sit idle), and serves the
//! router over HTTP/1.1. A flood of idle or slow connections, even from
//! our own address, therefore cannot take the open files, the places our
//! clients and workers need, or the time the workers' heartbeats need.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::admission::{Admission, Budget, Place};
use super::throttle::Throttle;
use super::Shared;

/// The bounds on the scheduler's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one address before they show the
    /// token (more close that address's oldest anonymous one).
    pub max_per_peer: usize,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a request's headers, counted from when the connection
    /// becomes ready for a request: so also the longest idle time.
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` until the task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shared: Arc<Shared>,
) {
    let limits = shared.limits;
    let budget = Budget {
        total: limits.max_connections,
        anonymous_per_peer: limits.max_per_peer,
    };
    let admission = Admission::default();
    let refused = Throttle::new();
    let failing = Throttle::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of open files, typically: wait for some to close
                // rather than spin.
                failing.note(
                    |n| tracing::warn!(error = %e, suppressed = n, "cannot accept a connection"),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let place = match admission.admit(peer.ip(), budget) {
            Ok(p) => Arc::new(p),
            Err(_) => {
                refused.note(|n| {
                    tracing::warn!(%peer, suppressed = n, "connection refused: every place holds an authenticated connection")
                });
                continue; // dropping the stream closes it
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = connection(stream, peer, tls, app, &shared, &place) => {}
                () = place.closing() => {}
            }
        });
    }
}

/// Serves one connection, after its handshake. The first request that
/// carries the token or a page session makes its place trusted.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    shared: &Arc<Shared>,
    place: &Arc<Place>,
) {
    let limits = &shared.limits;
    let (shared, place) = (shared.clone(), place.clone());
    // The peer's address reaches the handlers as axum's `ConnectInfo`.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let headers = request.headers();
        let token = super::http::bearer(headers).is_some_and(|t| shared.is_token(t));
        if token || super::page::has_session(&shared, headers) {
            place.trust();
        }
        request.extensions_mut().insert(ConnectInfo(peer));
        // A worker's session takes the place with it (`session.rs`).
        request.extensions_mut().insert(place.clone());
        app.clone().oneshot(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(64 << 10);
    match tls {
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
            let Ok(Ok(stream)) = handshake.await else {
                tracing::debug!(%peer, "TLS handshake failed or timed out");
                return;
            };
            let _ = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        }
        None => {
            let _ = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        }
    }
}
