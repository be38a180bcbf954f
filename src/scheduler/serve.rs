//! The scheduler's listener: accepts connections under a cap (in all, and
//! per peer address), gives each a bounded time for its TLS handshake and
//! for every request's headers (which also bounds how long a connection
//! may sit idle), and serves the router over HTTP/1.1. A flood of idle or
//! slow connections from one address therefore cannot take the open files
//! or the time the workers' heartbeats need.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::throttle::Throttle;
use super::Shared;

/// The bounds on the scheduler's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_peer: usize,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a request's headers, counted from when the connection
    /// becomes ready for a request: so also the longest idle time.
    pub idle_timeout: Duration,
}

/// Open connections, in all and by peer.
#[derive(Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// Frees a connection's place when it ends.
struct Place {
    open: Arc<Mutex<Open>>,
    peer: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    PeerFull,
}

/// Takes a place for a connection from `peer`, or says why there is none.
fn admit(
    open: &Arc<Mutex<Open>>,
    peer: IpAddr,
    limits: &ConnectionLimits,
) -> Result<Place, Refusal> {
    let mut o = open.lock();
    if o.total >= limits.max_connections {
        return Err(Refusal::Full);
    }
    let mine = o.by_peer.entry(peer).or_insert(0);
    if *mine >= limits.max_per_peer {
        return Err(Refusal::PeerFull);
    }
    *mine += 1;
    o.total += 1;
    Ok(Place {
        open: open.clone(),
        peer,
    })
}

/// Serves `app` on `listener` until the task is aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shared: Arc<Shared>,
) {
    let limits = shared.limits;
    let open = Arc::new(Mutex::new(Open::default()));
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
        let place = match admit(&open, peer.ip(), &limits) {
            Ok(p) => p,
            Err(why) => {
                refused.note(|n| {
                    tracing::warn!(%peer, reason = ?why, suppressed = n, "connection refused: too many open")
                });
                continue; // dropping the stream closes it
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let _place = place;
            connection(stream, peer, tls, app, &shared.limits).await;
        });
    }
}

/// Serves one connection, after its handshake.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: &ConnectionLimits,
) {
    // The peer's address reaches the handlers as axum's `ConnectInfo`.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
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
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        None => {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_in_all_and_per_peer_and_freed() {
        let limits = ConnectionLimits {
            max_connections: 3,
            max_per_peer: 2,
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = admit(&open, a, &limits).unwrap();
        let _a2 = admit(&open, a, &limits).unwrap();
        assert_eq!(admit(&open, a, &limits).err(), Some(Refusal::PeerFull));
        let _b1 = admit(&open, b, &limits).unwrap();
        assert_eq!(admit(&open, b, &limits).err(), Some(Refusal::Full));
        drop(a1);
        assert!(admit(&open, b, &limits).is_ok());
        assert_eq!(open.lock().by_peer.get(&a), Some(&1));
    }
}
