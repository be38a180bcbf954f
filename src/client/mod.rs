//! `SchedulerClient`: the authenticated HTTP client of the control plane,
//! used by worker agents, the CLI and tests. It sends and reads only the
//! types of `protocol`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::exit::{ExitStatus, FAILURE, USAGE};
use crate::protocol::{
    paths, ClusterStatus, Completion, DeregisterRequest, Instruction, PollQuery, RegisterRequest,
    RegisterResponse, RetireAllResponse, RetireRequest, ScaleRequest, SchedulerFile,
    SchedulerFileError, SubmitRequest, SubmitResponse, TaskId, TaskInfo, TaskList, TaskListQuery,
    TaskSpec, Token, WorkerCounts, WorkerId, WorkerInfo, WorkerList, WorkerListQuery, TASK_PAGE,
    WORKER_PAGE,
};
use crate::tls::Fingerprint;

mod session;
pub use session::Session;

/// A request to the scheduler that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The scheduler refused the token.
    #[error("the scheduler at {url} refused our token (401): the scheduler file is wrong or belongs to another cluster")]
    Unauthorized {
        /// The scheduler.
        url: String,
    },
    /// The scheduler does not know this worker.
    #[error("the scheduler does not know worker {0}")]
    UnknownWorker(WorkerId),
    /// The scheduler refused the request as malformed or invalid.
    #[error("the scheduler refused the request: {0}")]
    BadRequest(String),
    /// The server at the scheduler's address presented another certificate
    /// than the cluster's: it is not the cluster's scheduler.
    #[error("the server at {url} is not this cluster's scheduler: its TLS certificate is not the one the scheduler file names (the scheduler may have died and another process taken its port); refusing to talk to it")]
    WrongCertificate {
        /// The server.
        url: String,
    },
    /// A request is larger than the scheduler takes.
    #[error("{what} is larger than the scheduler takes in one request ({limit} bytes, {} tasks); submit it in smaller parts", crate::protocol::MAX_TASKS_PER_REQUEST)]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// The scheduler could not be reached or did not answer in time.
    #[error("cannot reach the scheduler at {url}")]
    Unreachable {
        /// The scheduler.
        url: String,
        /// The HTTP client's reason (refused, timed out...), kept for the chain.
        source: reqwest::Error,
    },
    /// A worker's session could not be opened in time, or ended.
    #[error("the session with the scheduler at {url} ended: {why}")]
    SessionLost {
        /// The scheduler.
        url: String,
        /// What ended it.
        why: String,
    },
    /// The scheduler answered with an unexpected status.
    #[error("the scheduler at {url} answered {status}: {body}")]
    Status {
        /// The scheduler.
        url: String,
        /// The status.
        status: StatusCode,
        /// Its body.
        body: String,
    },
}

impl ClientError {
    /// Whether retrying later could help (the scheduler may come back).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::SessionLost { .. }
        ) || matches!(self, ClientError::Status { status, .. } if status.is_server_error())
    }
}

impl ExitStatus for ClientError {
    fn exit_code(&self) -> u8 {
        match self {
            ClientError::BadRequest(_) | ClientError::TooLarge { .. } => USAGE,
            ClientError::Unauthorized { .. }
            | ClientError::WrongCertificate { .. }
            | ClientError::UnknownWorker(_)
            | ClientError::Unreachable { .. }
            | ClientError::SessionLost { .. }
            | ClientError::Status { .. } => FAILURE,
        }
    }
}

/// `items` in runs whose JSON fits in `limit` bytes (an item too large
/// alone goes alone: the server's refusal then names it).
fn fitting<T: Serialize + Clone>(items: &[T], limit: usize) -> Vec<Vec<T>> {
    fitting_counted(items, limit, usize::MAX)
}

/// As `fitting`, with at most `most` items a part.
fn fitting_counted<T: Serialize + Clone>(items: &[T], limit: usize, most: usize) -> Vec<Vec<T>> {
    let mut parts: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut bytes = 2; // the brackets
    for item in items {
        let n = serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0) + 1;
        if !current.is_empty() && (bytes + n > limit || current.len() == most) {
            parts.push(std::mem::take(&mut current));
            bytes = 2;
        }
        bytes += n;
        current.push(item.clone());
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Attempts at a request whose connection closed before it went out.
const RECONNECT_ATTEMPTS: u32 = 4;
/// The pause before the second attempt; each next one waits three times
/// longer (0.05 + 0.15 + 0.45 s in all).
const RECONNECT_FIRST_PAUSE: Duration = Duration::from_millis(50);

/// Whether `e` is a connection that closed (or was reset) while it was
/// being made, before the request went out: not a refusal (nothing
/// listens), not a timeout and not the wrong certificate.
fn closed_while_connecting(e: &reqwest::Error) -> bool {
    if !e.is_connect() || e.is_timeout() || crate::tls::is_wrong_certificate(e) {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return false;
            }
        }
        source = s.source();
    }
    true
}

/// A client of one scheduler. Its clones share where the scheduler is, so
/// that all of them follow it when it moves (`follow`).
#[derive(Debug, Clone)]
pub struct SchedulerClient {
    http: reqwest::Client,
    base: Arc<RwLock<String>>,
    token: Token,
    /// The certificate it pins, if any: a moved scheduler must present it.
    pin: Option<Fingerprint>,
    /// The scheduler file it came from, when it follows the scheduler: a
    /// request that finds no one is sent again where the file now says.
    source: Option<Arc<PathBuf>>,
}

/// Time allowed for a request beyond any long-poll wait.
const REQUEST_SLACK: Duration = Duration::from_secs(10);

/// A request that has a body to send, or none.
enum Body<'a, T: Serialize> {
    None,
    Json(&'a T),
}

// By hand: a derive would ask `T: Copy`, and only the reference is copied.
impl<T: Serialize> Clone for Body<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Serialize> Copy for Body<'_, T> {}

impl SchedulerClient {
    /// A client for the scheduler at `base`, pinned to the certificate
    /// `pin` names (`https://host:port`), or plain without one
    /// (`http://host:port`).
    pub fn new(base: impl Into<String>, token: Token, pin: Option<Fingerprint>) -> Self {
        let http = crate::tls::http_client_builder(pin.clone())
            .connect_timeout(Duration::from_secs(5))
            .build()
            // Only a TLS backend reqwest does not know fails this; ours is rustls.
            .expect("the control plane's HTTP client builds");
        let mut client = Self::with_http(http, base, token);
        client.pin = pin;
        client
    }

    /// A client for the scheduler a scheduler file describes.
    pub fn from_file(file: &SchedulerFile) -> Self {
        Self::new(
            file.address.clone(),
            file.token.clone(),
            file.certificate.clone(),
        )
    }

    /// A client for the scheduler the file at `path` describes, which
    /// follows it to a new address should it move (restarted elsewhere from
    /// its journal, or a scheduler job's successor).
    pub fn from_path(path: &Path) -> Result<Self, SchedulerFileError> {
        let mut client = Self::from_file(&SchedulerFile::read(path)?);
        client.source = Some(Arc::new(path.to_path_buf()));
        Ok(client)
    }

    /// Whether the scheduler file (if it follows one) now names another
    /// address of the same scheduler; if so it (and every clone) moved.
    fn moved(&self) -> bool {
        let Some(path) = &self.source else {
            return false;
        };
        let Ok(file) = SchedulerFile::read(path) else {
            return false;
        };
        let moved = self.follow(&file);
        if moved {
            tracing::info!(scheduler = %file.address, "the scheduler moved (its file says so): following it");
        }
        moved
    }

    /// A client that shares `http`'s connection pool (for many simulated
    /// workers in one process).
    pub fn with_http(http: reqwest::Client, base: impl Into<String>, token: Token) -> Self {
        SchedulerClient {
            http,
            base: Arc::new(RwLock::new(base.into().trim_end_matches('/').to_string())),
            token,
            pin: None,
            source: None,
        }
    }

    /// The scheduler's base URL.
    pub fn url(&self) -> String {
        self.base.read().clone()
    }

    /// Follows the scheduler to the address `file` names, when it is the
    /// same scheduler (same token and certificate) restarted elsewhere
    /// from its journal; returns whether the address changed. A file of
    /// another scheduler is not followed.
    pub fn follow(&self, file: &SchedulerFile) -> bool {
        let same = file.token == self.token && file.certificate == self.pin;
        let address = file.address.trim_end_matches('/');
        if !same || *self.base.read() == address {
            return false;
        }
        *self.base.write() = address.to_string();
        true
    }

    /// What a request that found no answer means: another server at the
    /// address (a wrong certificate), or no scheduler there.
    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        if crate::tls::is_wrong_certificate(&source) {
            ClientError::WrongCertificate { url: self.url() }
        } else {
            ClientError::Unreachable {
                url: self.url(),
                source,
            }
        }
    }

    /// Sends `request` with the token; `Ok(None)` for an answer without a body.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        worker: Option<WorkerId>,
    ) -> Result<Option<T>, ClientError> {
        let unreachable = |source| self.unreachable(source);
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        match (response.status(), worker) {
            (StatusCode::UNAUTHORIZED, _) => Err(ClientError::Unauthorized { url: self.url() }),
            (StatusCode::NOT_FOUND, Some(id)) => Err(ClientError::UnknownWorker(id)),
            (StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY, _) => Err(
                ClientError::BadRequest(response.text().await.unwrap_or_default()),
            ),
            (StatusCode::PAYLOAD_TOO_LARGE, _) => Err(ClientError::TooLarge {
                what: "the request".into(),
                limit: paths::MAX_BODY,
            }),
            (StatusCode::NO_CONTENT | StatusCode::ACCEPTED, _) => Ok(None),
            (s, _) if s.is_success() => Ok(Some(response.json().await.map_err(unreachable)?)),
            (status, _) => Err(ClientError::Status {
                url: self.url(),
                status,
                body: response.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Sends the request `request` builds, on a new connection again when
    /// the last one closed before the request went out, and once more at
    /// the scheduler's new address when its file says it moved.
    ///
    /// Why again: the scheduler closes the oldest anonymous connection
    /// from an address to make room for a new one, so a flood from our own
    /// address (another user on the login node) can close ours during its
    /// TLS handshake, before it shows the token. Nothing was sent then, so
    /// sending again is safe for every request; a fresh connection gets
    /// through between the flood's bursts. A refused connection (nothing
    /// listening) is not tried again: the scheduler is gone.
    async fn send_anew<T: DeserializeOwned>(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        worker: Option<WorkerId>,
    ) -> Result<Option<T>, ClientError> {
        let mut pause = RECONNECT_FIRST_PAUSE;
        let mut attempt = 1;
        let answer = loop {
            match self.send(request(), worker).await {
                Err(ClientError::Unreachable { source, .. })
                    if attempt < RECONNECT_ATTEMPTS && closed_while_connecting(&source) =>
                {
                    tracing::debug!(error = %source, attempt, "the connection closed before the request went out: again on a new one");
                    tokio::time::sleep(pause).await;
                    pause *= 3;
                    attempt += 1;
                }
                other => break other,
            }
        };
        match answer {
            Err(ClientError::Unreachable { .. }) if self.moved() => {
                self.send(request(), worker).await
            }
            other => other,
        }
    }

    /// POSTs `body` to `path` and reads the answer, which must have a body.
    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Body<'_, B>,
        worker: Option<WorkerId>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let request = || {
            let r = self
                .http
                .post(format!("{}{path}", self.url()))
                .timeout(timeout);
            match body {
                Body::Json(b) => r.json(b),
                Body::None => r,
            }
        };
        self.send_anew(request, worker).await
    }

    /// GETs `path` with `query` and reads the answer's body.
    async fn get<Q: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
        worker: Option<WorkerId>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let request = || {
            self.http
                .get(format!("{}{path}", self.url()))
                .query(query)
                .timeout(timeout)
        };
        let v = self.send_anew(request, worker).await?;
        self.expect(v)
    }

    fn expect<T>(&self, value: Option<T>) -> Result<T, ClientError> {
        value.ok_or_else(|| ClientError::Status {
            url: self.url(),
            status: StatusCode::NO_CONTENT,
            body: "expected a body".into(),
        })
    }

    /// Registers a worker.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        let v = self
            .post(paths::REGISTER, Body::Json(req), None, REQUEST_SLACK)
            .await?;
        self.expect(v)
    }

    /// Heartbeats and waits up to `wait` for an instruction.
    pub async fn poll(&self, id: WorkerId, wait: Duration) -> Result<Instruction, ClientError> {
        self.poll_draining(id, wait, false, None).await
    }

    /// Like `poll`; with `draining`, the worker takes no more tasks;
    /// `holding` lists the runs it holds (see `PollQuery`).
    pub async fn poll_draining(
        &self,
        id: WorkerId,
        wait: Duration,
        draining: bool,
        holding: Option<&[crate::protocol::TaskRun]>,
    ) -> Result<Instruction, ClientError> {
        let query = PollQuery {
            wait_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            draining,
            holding: holding.map(crate::protocol::runs_text),
        };
        let path = paths::worker(paths::POLL, id);
        self.get(&path, &query, Some(id), wait + REQUEST_SLACK)
            .await
    }

    /// Tells the scheduler this worker leaves, why and how.
    pub async fn deregister(
        &self,
        id: WorkerId,
        body: &DeregisterRequest,
    ) -> Result<(), ClientError> {
        let path = paths::worker(paths::DEREGISTER, id);
        self.post::<_, ()>(&path, Body::Json(body), Some(id), Duration::from_secs(5))
            .await
            .map(drop)
    }

    /// Reports that tasks ended (one request for all of them).
    /// Reports finished tasks, in as many requests as the body limit needs.
    pub async fn done(&self, id: WorkerId, done: &[Completion]) -> Result<(), ClientError> {
        let path = paths::worker(paths::DONE, id);
        for part in fitting(done, paths::MAX_BODY) {
            self.post::<_, ()>(&path, Body::Json(&part), Some(id), REQUEST_SLACK)
                .await?;
        }
        Ok(())
    }

    /// Submits tasks; dependencies may name tasks of the same batch. A
    /// batch over the body limit or the task bound goes in parts when no
    /// task names another (names resolve within one request); else it is
    /// refused whole.
    pub async fn submit(&self, tasks: &[TaskSpec]) -> Result<Vec<TaskId>, ClientError> {
        let parts = fitting_counted(
            tasks,
            paths::MAX_BODY - 64,
            crate::protocol::MAX_TASKS_PER_REQUEST,
        );
        let named = tasks.iter().any(|t| {
            t.deps
                .iter()
                .any(|d| matches!(d, crate::protocol::Dep::Name(_)))
        });
        if parts.len() > 1 && named {
            return Err(ClientError::TooLarge {
                what: format!(
                    "a graph of {} tasks whose dependencies name each other",
                    tasks.len()
                ),
                limit: paths::MAX_BODY,
            });
        }
        let mut ids = Vec::with_capacity(tasks.len());
        for part in parts {
            let body = SubmitRequest { tasks: part };
            let v: Option<SubmitResponse> = self
                .post(paths::TASKS, Body::Json(&body), None, REQUEST_SLACK)
                .await?;
            ids.extend(self.expect(v)?.ids);
        }
        Ok(ids)
    }

    /// Tasks by id (all when `ids` is `None`), with counts by state;
    /// `summary` asks for the counts only. Fetches page after page.
    pub async fn tasks(
        &self,
        ids: Option<&[TaskId]>,
        summary: bool,
    ) -> Result<TaskList, ClientError> {
        let mut done: Vec<TaskInfo> = Vec::new();
        // With ids: how many of them the pages so far have covered.
        let mut covered = 0;
        loop {
            let rest = ids.map(|all| &all[covered..]);
            let query = TaskListQuery {
                ids: rest.map(|r| r.iter().take(TASK_PAGE).copied().collect()),
                summary,
                after: done.last().map(|t| t.id).filter(|_| ids.is_none()),
            };
            let page: TaskList = self.get(paths::TASKS, &query, None, REQUEST_SLACK).await?;
            let asked = rest.map_or(0, |r| r.len().min(TASK_PAGE));
            covered += match (rest, page.tasks.last()) {
                (Some(r), Some(last)) if page.more => r
                    .iter()
                    .position(|i| *i == last.id)
                    .map_or(asked, |p| p + 1),
                _ => asked,
            };
            let more = page.more || ids.is_some_and(|all| covered < all.len());
            let empty = page.tasks.is_empty() && page.more;
            done.extend(page.tasks);
            if summary || empty || !more {
                return Ok(TaskList {
                    counts: page.counts,
                    tasks: done,
                    more: false,
                });
            }
        }
    }

    /// One task.
    pub async fn task(&self, id: TaskId) -> Result<TaskInfo, ClientError> {
        let path = paths::task(paths::TASK, id);
        self.get(&path, &(), None, REQUEST_SLACK).await
    }

    /// Waits until every task in `ids` (every task when `None`) has ended,
    /// checking every `every`; returns them.
    pub async fn wait_tasks(
        &self,
        ids: Option<&[TaskId]>,
        every: Duration,
    ) -> Result<Vec<TaskInfo>, ClientError> {
        loop {
            match ids {
                // The listed tasks themselves tell whether they are over.
                Some(_) => {
                    let tasks = self.tasks(ids, false).await?.tasks;
                    if tasks.iter().all(|t| t.state.is_final()) {
                        return Ok(tasks);
                    }
                }
                // For all tasks, the counts do; the list is fetched once, at the end.
                None => {
                    if self.tasks(None, true).await?.counts.unfinished() == 0 {
                        return Ok(self.tasks(None, false).await?.tasks);
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Cancels a task and what depends on it.
    pub async fn cancel_task(&self, id: TaskId) -> Result<(), ClientError> {
        let path = paths::task(paths::TASK_CANCEL, id);
        self.post::<(), ()>(&path, Body::None, None, REQUEST_SLACK)
            .await
            .map(drop)
    }

    /// Asks worker `id` to retire.
    pub async fn retire(&self, id: WorkerId, reason: &str) -> Result<(), ClientError> {
        let body = RetireRequest {
            reason: Some(reason.to_string()),
        };
        let path = paths::worker(paths::RETIRE, id);
        self.post::<_, ()>(&path, Body::Json(&body), Some(id), REQUEST_SLACK)
            .await
            .map(drop)
    }

    /// Asks every live worker to retire; returns how many were asked.
    pub async fn retire_all(&self, reason: &str) -> Result<usize, ClientError> {
        let body = RetireRequest {
            reason: Some(reason.to_string()),
        };
        let v: Option<RetireAllResponse> = self
            .post(paths::RETIRE_ALL, Body::Json(&body), None, REQUEST_SLACK)
            .await?;
        Ok(self.expect(v)?.retiring)
    }

    /// The status of the cluster the scheduler serves.
    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        self.get(paths::CLUSTER, &(), None, REQUEST_SLACK).await
    }

    /// What the pool cost and used so far.
    pub async fn report(&self) -> Result<crate::protocol::Report, ClientError> {
        self.get(paths::REPORT, &(), None, REQUEST_SLACK).await
    }

    /// Asks the cluster (or, in a pool with groups, its `group`) to scale
    /// to `workers`.
    pub async fn scale(&self, workers: usize, group: Option<&str>) -> Result<(), ClientError> {
        let body = ScaleRequest {
            workers,
            group: group.map(String::from),
        };
        self.post::<_, ()>(paths::CLUSTER_SCALE, Body::Json(&body), None, REQUEST_SLACK)
            .await
            .map(drop)
    }

    /// Asks the cluster (or, in a pool with groups, `request.group`) to
    /// size itself to its tasks.
    pub async fn adapt(&self, request: &crate::protocol::AdaptRequest) -> Result<(), ClientError> {
        self.post::<_, ()>(
            paths::CLUSTER_ADAPT,
            Body::Json(request),
            None,
            REQUEST_SLACK,
        )
        .await
        .map(drop)
    }

    /// Asks the cluster to close.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.post::<(), ()>(paths::CLUSTER_CLOSE, Body::None, None, REQUEST_SLACK)
            .await
            .map(drop)
    }

    /// A one-time code that logs a browser in to the status page.
    pub async fn dashboard_code(&self) -> Result<crate::protocol::DashboardCode, ClientError> {
        let v = self
            .post::<(), _>(paths::DASHBOARD_CODE, Body::None, None, REQUEST_SLACK)
            .await?;
        self.expect(v)
    }

    /// A chunk of the log of the job that runs `worker` (a worker or job
    /// name, as `status` shows them), as `query` says: how a driver that
    /// cannot open the log file (`--ssh`) reads it.
    pub async fn job_log(
        &self,
        worker: &str,
        query: &crate::protocol::LogQuery,
    ) -> Result<crate::protocol::LogChunk, ClientError> {
        // Names are drover's and Slurm's (`w3`, `812_4`): a name with any
        // other character would not survive a URL path unescaped.
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if worker.is_empty() || worker.len() > 256 || !worker.chars().all(plain) {
            return Err(ClientError::Status {
                url: self.url(),
                status: StatusCode::NOT_FOUND,
                body: format!("`{worker}` is no worker or job name"),
            });
        }
        let path = paths::UI_WORKER_LOG.replace("{name}", worker);
        self.get(&path, query, None, REQUEST_SLACK).await
    }

    /// Every worker the scheduler knows, in id order, fetched a page at
    /// a time.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        let mut all: Vec<WorkerInfo> = Vec::new();
        loop {
            let page = self
                .worker_page(all.last().map(|w| w.id), WORKER_PAGE)
                .await?;
            all.extend(page.workers);
            if !page.more {
                return Ok(all);
            }
        }
    }

    /// Up to `limit` workers after `after` (1 to `WORKER_PAGE`), with the
    /// counts of all of them.
    pub async fn worker_page(
        &self,
        after: Option<WorkerId>,
        limit: usize,
    ) -> Result<WorkerList, ClientError> {
        let query = WorkerListQuery {
            summary: false,
            after,
            limit: Some(limit),
        };
        self.get(paths::WORKERS, &query, None, REQUEST_SLACK).await
    }

    /// How many workers are in each state, without listing them.
    pub async fn worker_counts(&self) -> Result<WorkerCounts, ClientError> {
        let query = WorkerListQuery {
            summary: true,
            ..Default::default()
        };
        let list: WorkerList = self
            .get(paths::WORKERS, &query, None, REQUEST_SLACK)
            .await?;
        Ok(list.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_follows_only_the_same_scheduler_to_a_new_address() {
        let token = Token::generate();
        let file = |address: &str, token: &Token| SchedulerFile {
            address: address.into(),
            cluster_id: "c0ffee00".parse().unwrap(),
            token: token.clone(),
            certificate: None,
            pid: 1,
            started_at: 0,
            dask: None,
        };
        let client = SchedulerClient::new("http://10.0.0.1:7000", token.clone(), None);
        let clone = client.clone();
        assert!(
            !client.follow(&file("http://10.0.0.1:7000/", &token)),
            "no move"
        );
        // Another token: another scheduler, whatever its file says.
        assert!(!client.follow(&file("http://10.0.0.9:1", &Token::generate())));
        assert_eq!(clone.url(), "http://10.0.0.1:7000");
        assert!(client.follow(&file("http://10.0.0.2:7001", &token)));
        assert_eq!(clone.url(), "http://10.0.0.2:7001", "every clone follows");
    }

    #[tokio::test]
    async fn a_connection_closed_in_its_handshake_is_tried_again_a_refused_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // Closes every connection as soon as it is made, as the scheduler
        // does to the oldest anonymous one under a flood.
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        // reqwest finds no TLS provider unless one was installed: this test
        // must not depend on another having run first in this process.
        crate::tls::provider();
        let http = reqwest::Client::new();
        let error = |url: String| {
            let http = http.clone();
            async move { http.get(url).send().await.unwrap_err() }
        };
        let dropped = error(format!("https://{open}/")).await;
        assert!(closed_while_connecting(&dropped), "{dropped:?}");
        let refused = error(format!("https://{closed}/")).await;
        assert!(!closed_while_connecting(&refused), "{refused:?}");
    }

    #[test]
    fn parts_fit_the_limit_and_keep_their_order() {
        let items: Vec<String> = (0..100).map(|i| format!("{i:0>50}")).collect();
        let parts = fitting(&items, 1000);
        assert!(parts.len() > 5);
        for p in &parts {
            assert!(serde_json::to_vec(p).unwrap().len() <= 1000);
        }
        assert_eq!(parts.concat(), items);
        // One item over the limit goes alone; nothing is ever empty.
        let big = vec!["x".repeat(2000), "y".into()];
        assert_eq!(fitting(&big, 1000).len(), 2);
        assert_eq!(fitting::<String>(&[], 1000), vec![Vec::<String>::new()]);
        // A count bound cuts too.
        let counted = fitting_counted(&items, usize::MAX, 30);
        assert_eq!(
            counted.iter().map(Vec::len).collect::<Vec<_>>(),
            [30, 30, 30, 10]
        );
        assert_eq!(counted.concat(), items);
    }
}
