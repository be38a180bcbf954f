//! The TLS floor of a session (`cargo bench --bench tls_floor`): what
//! rustls itself keeps for one idle server connection, counted by an
//! allocator that tracks live bytes, with the scheduler's own server
//! configuration (`ClusterCert::server_config`) and the agents' pinned
//! client configuration.
//!
//! N connection pairs are made in memory, each through its handshake and
//! one heartbeat-sized exchange each way (what a session does, then idles
//! on); the clients are then dropped, and what is still live is the
//! servers'. Nothing here touches a socket or the scheduler, so the
//! figure is rustls's alone: the scheduler's memory per TLS session
//! (`cargo bench --bench control_plane`) is this plus the plain session.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use rustls::{ClientConnection, Connection, ServerConnection};

/// The system allocator, counting the bytes it holds for the program.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the
// counter only observes the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Moves what `from` has to send into `to`; whether anything moved.
fn pump(from: &mut Connection, to: &mut Connection) -> bool {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets().unwrap();
    }
    !wire.is_empty()
}

/// `bytes` of application data from `from`, read whole by `to`.
fn send(from: &mut Connection, to: &mut Connection, bytes: usize) {
    from.writer().write_all(&vec![7u8; bytes]).unwrap();
    pump(from, to);
    let mut got = vec![0u8; bytes];
    to.reader().read_exact(&mut got).unwrap();
}

/// One pair through its handshake and a heartbeat each way (a session's
/// frame up, its acknowledgement down).
fn session(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
) -> (Connection, Connection) {
    let name = "drover-scheduler".try_into().unwrap();
    let mut c = Connection::from(ClientConnection::new(client.clone(), name).unwrap());
    let mut s = Connection::from(ServerConnection::new(server.clone()).unwrap());
    while pump(&mut c, &mut s) | pump(&mut s, &mut c) {}
    assert!(!c.is_handshaking() && !s.is_handshaking());
    send(&mut c, &mut s, 64);
    send(&mut s, &mut c, 16);
    (s, c)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n = if measuring { 2_000 } else { 20 };
    let cert = drover::tls::ClusterCert::generate("127.0.0.1").unwrap();
    let server = cert.server_config();
    let client = Arc::new(drover::tls::pinned_client_config(cert.fingerprint()));
    // The first pair builds what is shared once (provider tables, the
    // ticketer's keys): not per connection.
    drop(session(&server, &client));
    let before = live();
    let mut servers = Vec::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, c) = session(&server, &client);
        servers.push(s);
        clients.push(c);
    }
    let both = live() - before;
    drop(clients);
    let held = live() - before;
    let kib = |bytes: isize| bytes as f64 / n as f64 / 1024.0;
    println!(
        "{n} idle TLS sessions in memory: server side {:.2} KiB each ({} bytes inline), server and client {:.2} KiB",
        kib(held),
        std::mem::size_of::<ServerConnection>(),
        kib(both)
    );
    println!(
        "tls_floor: connections={n} server_kib_per_connection={:.2}",
        kib(held)
    );
    drop(servers);
}
