//! The agent's end of a worker's session (`protocol::session`): one
//! upgraded connection to the scheduler, read and written by a task of its
//! own, so that the agent's loop only ever waits on a channel (which is
//! safe to stop waiting on) and never leaves a frame half written.

use reqwest::header::{CONNECTION, UPGRADE};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ClientError, SchedulerClient, REQUEST_SLACK};
use crate::protocol::session::{self, encode, AgentFrame, FrameReader};
use crate::protocol::{paths, Instruction, TaskRun, WorkerId};

/// The most bytes read from the session at a time.
const CHUNK: usize = 1024;

/// Instructions read and not yet taken by the agent: the reading task
/// waits (and so reads no more) beyond this.
const QUEUED: usize = 16;

/// An open session. Dropping it closes the connection.
#[derive(Debug)]
pub struct Session {
    url: String,
    told: mpsc::Receiver<Result<Instruction, String>>,
    up: mpsc::UnboundedSender<Vec<u8>>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl Session {
    /// Sends a heartbeat (the task writes it whole, in order).
    pub fn heartbeat(&self, draining: bool, holding: Vec<TaskRun>) {
        let frame = AgentFrame::Heartbeat { draining, holding };
        // A task that ended has said why on `told`.
        let _ = self.up.send(encode(&frame));
    }

    /// The next instruction; an error once the session is over (the
    /// scheduler closed it, the connection broke, or a heartbeat went
    /// unanswered for `REQUEST_SLACK`).
    pub async fn next(&mut self) -> Result<Instruction, ClientError> {
        match self.told.recv().await {
            Some(Ok(i)) => Ok(i),
            Some(Err(why)) => Err(self.lost(why)),
            None => Err(self.lost("the session's task ended".into())),
        }
    }

    fn lost(&self, why: String) -> ClientError {
        ClientError::SessionLost {
            url: self.url.clone(),
            why,
        }
    }
}

impl SchedulerClient {
    /// Opens worker `id`'s session. A scheduler that does not know the
    /// worker answers `UnknownWorker` (register again).
    pub async fn open_session(&self, id: WorkerId) -> Result<Session, ClientError> {
        match self.upgrade(id).await {
            Err(ClientError::Unreachable { .. }) if self.moved() => self.upgrade(id).await,
            other => other,
        }
    }

    async fn upgrade(&self, id: WorkerId) -> Result<Session, ClientError> {
        let url = self.url();
        let request = self
            .http
            .get(format!("{url}{}", paths::worker(paths::SESSION, id)))
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, session::UPGRADE)
            .bearer_auth(self.token.expose())
            .send();
        let lost = |why: &str| ClientError::SessionLost {
            url: url.clone(),
            why: why.to_string(),
        };
        let response = tokio::time::timeout(REQUEST_SLACK, request)
            .await
            .map_err(|_| lost("no answer to the session's request"))?
            .map_err(|e| self.unreachable(e))?;
        match response.status() {
            StatusCode::SWITCHING_PROTOCOLS => {}
            StatusCode::UNAUTHORIZED => return Err(ClientError::Unauthorized { url }),
            StatusCode::NOT_FOUND => return Err(ClientError::UnknownWorker(id)),
            status => {
                let body = response.text().await.unwrap_or_default();
                return Err(ClientError::Status { url, status, body });
            }
        }
        let stream = response
            .upgrade()
            .await
            .map_err(|e| lost(&format!("the upgrade failed: {e}")))?;
        let (told_tx, told) = mpsc::channel(QUEUED);
        let (up, up_rx) = mpsc::unbounded_channel();
        let pump = tokio::spawn(pump(stream, up_rx, told_tx));
        Ok(Session {
            url,
            told,
            up,
            pump,
        })
    }
}

/// Reads instructions and writes heartbeats until the session ends, then
/// says why on `told`.
async fn pump(
    mut io: reqwest::Upgraded,
    mut up: mpsc::UnboundedReceiver<Vec<u8>>,
    told: mpsc::Sender<Result<Instruction, String>>,
) {
    let mut reader = FrameReader::default();
    let mut chunk = [0u8; CHUNK];
    // Set when a heartbeat went out, cleared by any frame back.
    let mut answer_by: Option<Instant> = None;
    let why = loop {
        tokio::select! {
            read = io.read(&mut chunk) => {
                let n = match read {
                    Ok(0) => break "the scheduler closed the session".to_string(),
                    Ok(n) => n,
                    Err(e) => break format!("reading: {e}"),
                };
                if let Err(e) = reader.push(&chunk[..n]) {
                    break e.to_string();
                }
                loop {
                    match reader.take::<Instruction>() {
                        Ok(Some(i)) => {
                            answer_by = None;
                            if told.send(Ok(i)).await.is_err() {
                                return; // the session was dropped
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = told.send(Err(e.to_string())).await;
                            return;
                        }
                    }
                }
            }
            frame = up.recv() => {
                let Some(frame) = frame else { return };
                let write = async {
                    io.write_all(&frame).await?;
                    io.flush().await
                };
                match tokio::time::timeout(REQUEST_SLACK, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break format!("writing: {e}"),
                    Err(_) => break "a heartbeat could not be written in time".to_string(),
                }
                answer_by.get_or_insert(Instant::now() + REQUEST_SLACK);
            }
            () = until(answer_by) => {
                break format!("no answer to a heartbeat within {}", humantime::format_duration(REQUEST_SLACK));
            }
        }
    };
    let _ = told.send(Err(why)).await;
}

/// Resolves at `t`; never without one.
async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
