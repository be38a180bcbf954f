//! The scheduler's end of a worker's session (`protocol::session`): the
//! route that turns an authenticated request into a session, and the loop
//! that serves it. `next_event` only waits (a frame's bytes, a wake from
//! the registry, the agent's silence, the scheduler stopping); `handle`
//! decides and answers.
//!
//! What an idle session costs is its TLS stream, this loop's small state,
//! and a read of at most `CHUNK` bytes: no HTTP buffers, nothing per
//! request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::Place;
use super::registry::PollStart;
use super::Shared;
use crate::protocol::session::{encode, AgentFrame, FrameReader, UPGRADE};
use crate::protocol::{Instruction, WorkerId};

/// The most bytes read from a session at a time. Heartbeats are far
/// smaller; a larger frame is read in several pieces.
const CHUNK: usize = 512;

/// The longest a frame may take to be written to an agent that does not
/// read: then the session closes (the agent opens another).
const WRITE_LIMIT: Duration = Duration::from_secs(10);

/// `GET /v1/workers/{id}/session` with `Upgrade: drover-session`: answers
/// `101` and serves the session on the connection from then on. The
/// connection's admission place goes with it, so a session counts among
/// the scheduler's connections for as long as it lives.
pub(crate) async fn open(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<u64>,
    mut request: Request,
) -> Response {
    let id = WorkerId(id);
    let asks = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(UPGRADE.as_bytes()));
    if !asks {
        let why = format!("a session needs the header `Upgrade: {UPGRADE}`\n");
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let Some(wake) = shared.registry().wake_of(id) else {
        return (StatusCode::NOT_FOUND, "no such worker\n").into_response();
    };
    let place = request.extensions_mut().remove::<Arc<Place>>();
    let Some(upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        let why = "this connection cannot carry a session\n";
        return (StatusCode::BAD_REQUEST, why).into_response();
    };
    tokio::spawn(async move {
        match upgrade.await {
            Ok(stream) => {
                let session = Session {
                    shared,
                    id,
                    wake,
                    _place: place,
                };
                session.serve(TokioIo::new(stream)).await;
            }
            Err(e) => tracing::debug!(worker = %id, error = %e, "a session's upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(UPGRADE));
    response
}

/// One worker's session.
struct Session {
    shared: Arc<Shared>,
    id: WorkerId,
    /// Notified when the registry has news for this worker.
    wake: Arc<Notify>,
    /// The connection's admission place, released when the session ends.
    _place: Option<Arc<Place>>,
}

/// What happened on a session.
enum Event {
    /// Bytes from the agent (none: it closed).
    Read(std::io::Result<usize>),
    /// The registry may have news for the worker.
    Woken,
    /// The agent has been silent past its bound.
    Silent,
    /// The scheduler stops.
    Stopping,
}

/// What the session does next.
enum Next {
    Go,
    /// Send this instruction (once the journal holds what led to it).
    Tell(Instruction),
    Close,
}

impl Session {
    /// Serves frames until either side ends the session.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut io: S) {
        let mut reader = FrameReader::default();
        let mut chunk = [0u8; CHUNK];
        let silence = self.silence();
        let mut deadline = Instant::now() + silence;
        loop {
            if self.shared.stopped.load(Ordering::SeqCst) {
                return;
            }
            let event = self.next_event(&mut io, &mut chunk, deadline).await;
            let next = match event {
                Event::Read(Ok(n)) if n > 0 => {
                    deadline = Instant::now() + silence;
                    self.take_in(&mut reader, &chunk[..n])
                }
                Event::Read(_) | Event::Silent | Event::Stopping => Next::Close,
                Event::Woken => match self.shared.registry().next_for(self.id) {
                    Some(i) => Next::Tell(i),
                    None => Next::Go,
                },
            };
            match next {
                Next::Go => {}
                Next::Tell(i) => {
                    if !self.tell(&mut io, &i).await {
                        return;
                    }
                }
                Next::Close => return,
            }
        }
    }

    /// Waits for the next event.
    async fn next_event<S: AsyncRead + Unpin>(
        &self,
        io: &mut S,
        chunk: &mut [u8],
        deadline: Instant,
    ) -> Event {
        tokio::select! {
            read = io.read(chunk) => Event::Read(read),
            () = self.wake.notified() => Event::Woken,
            () = tokio::time::sleep_until(deadline) => Event::Silent,
            () = self.shared.stopping.notified() => Event::Stopping,
        }
    }

    /// How long an agent may say nothing before its session closes: as
    /// long as the registry waits before it declares the worker lost.
    fn silence(&self) -> Duration {
        let config = &self.shared.config;
        config.heartbeat_interval * config.missed_heartbeats.max(1)
    }

    /// Takes in bytes from the agent; answers a heartbeat with what the
    /// worker should do, or with an acknowledgement.
    fn take_in(&self, reader: &mut FrameReader, bytes: &[u8]) -> Next {
        if let Err(e) = reader.push(bytes) {
            tracing::warn!(worker = %self.id, error = %e, "closing a session");
            return Next::Close;
        }
        // Only the latest heartbeat read counts: its answer covers the rest.
        let mut answer = Next::Go;
        loop {
            match reader.take::<AgentFrame>() {
                Ok(None) => return answer,
                Ok(Some(frame)) if frame.is_bounded() => answer = self.heartbeat(frame),
                Ok(Some(_)) | Err(_) => {
                    tracing::warn!(worker = %self.id, "closing a session: a frame out of bounds");
                    return Next::Close;
                }
            }
            if matches!(answer, Next::Close) {
                return answer;
            }
        }
    }

    fn heartbeat(&self, frame: AgentFrame) -> Next {
        let AgentFrame::Heartbeat { draining, holding } = frame;
        match self
            .shared
            .registry()
            .poll(self.id, draining, Some(holding))
        {
            None => Next::Close,
            Some(PollStart::Now(i)) => Next::Tell(i),
            Some(PollStart::Wait(_)) => Next::Tell(Instruction::Continue { next_poll_ms: 0 }),
        }
    }

    /// Sends `told`, once every change made up to it is in the journal (as
    /// an HTTP answer waits); `false` when the session is over.
    async fn tell<S: AsyncWrite + Unpin>(&self, io: &mut S, told: &Instruction) -> bool {
        if let Err(e) = self.shared.durable().await {
            tracing::warn!(worker = %self.id, error = %e, "the journal cannot be written: closing a session");
            return false;
        }
        let frame = encode(told);
        let write = async {
            io.write_all(&frame).await?;
            io.flush().await
        };
        matches!(tokio::time::timeout(WRITE_LIMIT, write).await, Ok(Ok(())))
    }
}
