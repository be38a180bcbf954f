//! The scheduler that workers register with: an HTTP server (embedded in a
//! driver program, or standalone as `drover scheduler`) holding the
//! registry of workers and their tasks, authenticated by a per-cluster
//! token. `ops` holds its operations, which the HTTP face (`http`) and the
//! in-process `Scheduler` handle share.

mod admission;
mod config;
mod control;
mod costs;
mod http;
mod journal;
mod listing;
mod liveness;
mod ops;
mod page;
mod registry;
mod serve;
mod session;
mod snapshot;
mod throttle;

pub use config::{
    Bind, SchedulerConfig, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_HELD_POLLS, DEFAULT_MISSED_HEARTBEATS,
};
pub use serve::ConnectionLimits;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::SpecError;
use crate::exit::{ExitStatus, FAILURE, USAGE};
use crate::net::NetError;
use crate::protocol::{
    ClusterId, ClusterStatus, DaskEndpoint, Departure, RegisterRequest, RegisterResponse,
    SchedulerFile, SchedulerFileError, Token, WorkerId, WorkerInfo,
};
use registry::Registry;

/// Computes the status of the cluster a scheduler serves, on demand.
pub type StatusSource = Arc<dyn Fn() -> Option<ClusterStatus> + Send + Sync>;

/// What a client asks of the cluster a scheduler serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    /// Scale to this many workers.
    Scale(usize),
    /// Adapt between `min` and `max` workers, retiring workers idle for
    /// `idle` (the pool's own setting when `None`).
    Adapt {
        /// Fewest workers.
        min: usize,
        /// Most workers.
        max: usize,
        /// How long a worker may idle.
        idle: Option<std::time::Duration>,
    },
    /// Close the cluster.
    Close,
    /// Cancel one of its jobs (it is replaced as any job that ended).
    CancelJob(crate::slurm::JobRef),
}

/// A scheduler that could not start or be used.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] SpecError),
    /// The interface to bind to cannot be used.
    #[error(transparent)]
    Interface(#[from] NetError),
    /// Binding failed.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
    /// The scheduler file could not be written.
    #[error(transparent)]
    File(#[from] SchedulerFileError),
    /// The cluster's certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] crate::tls::CertError),
    /// The journal cannot be read or written.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Waiting for workers took too long.
    #[error("{registered} of {wanted} workers registered within {waited:?}")]
    WaitTimeout {
        /// How many were asked for.
        wanted: usize,
        /// How many came.
        registered: usize,
        /// How long it waited.
        waited: Duration,
    },
}

impl ExitStatus for SchedulerError {
    fn exit_code(&self) -> u8 {
        match self {
            SchedulerError::Config(e) => e.exit_code(),
            SchedulerError::Interface(e) => e.exit_code(),
            SchedulerError::File(e) => e.exit_code(),
            SchedulerError::Bind { .. }
            | SchedulerError::WaitTimeout { .. }
            | SchedulerError::Certificate(_)
            | SchedulerError::Journal(_) => FAILURE,
        }
    }
}

impl ExitStatus for NetError {
    fn exit_code(&self) -> u8 {
        match self {
            NetError::NoSuchInterface { .. } | NetError::NoIpv4 { .. } => USAGE,
            NetError::List(_) => FAILURE,
        }
    }
}

/// State shared by the request handlers and the scheduler handle.
pub(crate) struct Shared {
    pub(crate) cluster_id: ClusterId,
    pub(crate) token: Token,
    pub(crate) config: SchedulerConfig,
    /// The connection bounds in force.
    pub(crate) limits: ConnectionLimits,
    /// Refused requests, logged a few at a time.
    pub(crate) refusals: throttle::Throttle,
    registry: Mutex<Registry>,
    /// Polls held open right now.
    pub(crate) held_polls: AtomicUsize,
    /// Bumped on every change to the registry, for waiters.
    version: watch::Sender<u64>,
    /// Where cluster requests go, when a cluster is attached, and how
    /// many workers each of its jobs holds.
    pub(crate) control: Mutex<control::Controls>,
    /// Where the attached cluster's status comes from.
    pub(crate) cluster_status: Mutex<Option<StatusSource>>,
    /// What the pool's jobs were allocated, as the pool last read it.
    pub(crate) costs: Mutex<costs::Costs>,
    /// The pool's Dask scheduler, for `dask` pools.
    dask: Mutex<Option<DaskEndpoint>>,
    /// Set by `stop`: connections that outlive the server get no answers.
    pub(crate) stopped: AtomicBool,
    /// Notified by `stop`, so held polls end at once.
    pub(crate) stopping: Notify,
    /// The status page's sessions, timeline and latest update.
    pub(crate) page: page::Page,
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock()
    }

    /// Whether `presented` is the cluster's token (compared in constant time).
    pub(crate) fn is_token(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(presented.as_bytes().ct_eq(self.token.expose().as_bytes()))
    }

    pub(crate) fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Waits until every change made so far is in the journal (at once
    /// without one): what an answer waits for before it leaves, over HTTP
    /// or a session, so that a restart finds what the answer said.
    pub(crate) async fn durable(&self) -> Result<(), crate::journal::JournalError> {
        let mark = self.registry().journal_mark();
        match mark {
            Some((waiter, seq)) => waiter.durable(seq).await,
            None => Ok(()),
        }
    }
}

/// A running scheduler. Dropping it stops the server.
pub struct Scheduler {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The cluster's certificate, when it serves TLS.
    cert: Option<crate::tls::ClusterCert>,
    server: JoinHandle<()>,
    monitor: JoinHandle<()>,
    /// Started on a journal that had records: it continues a scheduler.
    restored: bool,
}

impl Scheduler {
    /// Starts a scheduler with a fresh cluster id and token.
    pub async fn start(config: SchedulerConfig) -> Result<Scheduler, SchedulerError> {
        Self::start_with(config, ClusterId::generate(), Token::generate()).await
    }

    /// Starts a scheduler for an existing cluster id and token.
    pub async fn start_with(
        config: SchedulerConfig,
        cluster_id: ClusterId,
        token: Token,
    ) -> Result<Scheduler, SchedulerError> {
        let config = config.validated()?;
        let journal = match &config.journal {
            Some(path) => Some(journal::open(path)?),
            None => None,
        };
        let (cluster_id, token) = match journal.as_ref().and_then(|j| j.identity.as_ref()) {
            Some(id) => (id.cluster_id.clone(), id.token.clone()),
            None => (cluster_id, token),
        };
        let wanted = SocketAddr::new(bind_ip(&config.bind)?, config.port);
        let listener = journal::listen(journal.as_ref(), wanted).await?;
        let addr = listener
            .local_addr()
            .map_err(|cause| SchedulerError::Bind {
                addr: wanted,
                cause,
            })?;
        let cert = match (
            config.tls,
            journal.as_ref().and_then(|j| j.identity.as_ref()),
        ) {
            (false, _) => None,
            (true, Some(id)) => Some(id.cert()?),
            (true, None) => Some(crate::tls::ClusterCert::generate(cluster_id.as_str())?),
        };
        let limits = config.limits(open_file_limit());
        let restored = journal.as_ref().is_some_and(|j| j.identity.is_some());
        let mut registry = Registry::for_config(&config);
        let began_ms = journal::began_ms(journal.as_ref());
        if let Some(j) = journal {
            j.restore(&mut registry, &cluster_id, &token, cert.as_ref(), addr)
                .await?;
        }
        let costs = costs::Costs::new(began_ms, &registry);
        let page = page::Page::new(config.timeline_samples(), cert.is_some());
        let shared = Arc::new(Shared {
            cluster_id,
            token,
            config,
            limits,
            refusals: throttle::Throttle::new(),
            registry: Mutex::new(registry),
            held_polls: AtomicUsize::new(0),
            version: watch::channel(0).0,
            control: Mutex::new(control::Controls::default()),
            cluster_status: Mutex::new(None),
            costs: Mutex::new(costs),
            dask: Mutex::new(None),
            stopped: AtomicBool::new(false),
            stopping: Notify::new(),
            page,
        });
        let tls_on = cert.is_some();
        let tls = cert
            .as_ref()
            .map(|c| tokio_rustls::TlsAcceptor::from(c.server_config()));
        let server = tokio::spawn(serve::serve(
            listener,
            tls,
            http::router(shared.clone()),
            shared.clone(),
        ));
        let monitor = tokio::spawn(watch_heartbeats(shared.clone()));
        tracing::info!(
            address = %format!("{}://{addr}", if tls_on { "https" } else { "http" }),
            cluster = %shared.cluster_id,
            heartbeat_ms = shared.config.heartbeat_interval.as_millis() as u64,
            "scheduler listening"
        );
        Ok(Scheduler {
            shared,
            addr,
            cert,
            server,
            monitor,
            restored,
        })
    }

    /// The socket address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `https://10.77.0.1:40123`.
    pub fn url(&self) -> String {
        match self.cert {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The fingerprint of its certificate, which its clients pin.
    pub fn fingerprint(&self) -> Option<crate::tls::Fingerprint> {
        self.cert.as_ref().map(|c| c.fingerprint())
    }

    /// Its certificate, to secure the pool's Dask scheduler with.
    pub fn certificate(&self) -> Option<&crate::tls::ClusterCert> {
        self.cert.as_ref()
    }

    /// A client of it, pinned to its certificate.
    pub fn client(&self) -> crate::client::SchedulerClient {
        crate::client::SchedulerClient::from_file(&self.scheduler_file())
    }

    /// Its cluster id.
    pub fn cluster_id(&self) -> &ClusterId {
        &self.shared.cluster_id
    }

    /// Its token.
    pub fn token(&self) -> &Token {
        &self.shared.token
    }

    /// Polls held open right now.
    pub fn held_polls(&self) -> usize {
        self.shared.held_polls.load(Ordering::Relaxed)
    }

    /// Its settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.shared.config
    }

    /// The scheduler file describing it.
    pub fn scheduler_file(&self) -> SchedulerFile {
        SchedulerFile {
            address: self.url(),
            cluster_id: self.shared.cluster_id.clone(),
            token: self.shared.token.clone(),
            certificate: self.fingerprint(),
            pid: std::process::id(),
            started_at: crate::protocol::unix_ms() / 1000,
            dask: self.dask(),
        }
    }

    /// A URL that logs one browser in to its status page, once, within 5
    /// minutes: what `drover dashboard` prints.
    pub fn dashboard_url(&self) -> String {
        format!(
            "{}{}?code={}",
            self.url(),
            crate::protocol::paths::UI_LOGIN,
            page::new_code(&self.shared).expose()
        )
    }

    /// Writes its scheduler file to `path` (atomically, mode 0600).
    pub fn write_scheduler_file(&self, path: &Path) -> Result<(), SchedulerError> {
        Ok(self.scheduler_file().write(path)?)
    }

    /// Registers a worker, as `POST /v1/register` does.
    pub fn register(&self, req: RegisterRequest) -> RegisterResponse {
        self.shared.register(req)
    }

    /// Takes a worker's farewell, as its deregistration request does;
    /// `false` for a worker it does not know.
    pub fn deregister(&self, id: WorkerId, reason: &str, departure: Departure) -> bool {
        self.shared.deregister(id, reason, departure)
    }

    /// Records how busy the pool's Dask workers are, as Dask reports it
    /// (tasks executing or ready, by drover worker name), so that idleness
    /// means the same for them as for native workers.
    pub fn set_dask_activity(&self, busy: &HashMap<String, u32>) {
        self.shared.registry().set_dask_activity(busy);
        self.shared.changed();
    }

    /// Records each Dask worker's busy time so far, as Dask's own task
    /// records give it (seconds by Dask worker name): a Dask pool's busy
    /// time, for what it cost.
    pub fn set_dask_busy(&self, seconds: &HashMap<String, f64>) {
        self.shared.costs.lock().set_dask_busy(seconds);
    }

    /// Records the core-milliseconds of idle jobs `group`'s adaptive pool
    /// kept so far only for its cooldown after going up.
    pub fn set_cooldown_idle(&self, group: Option<String>, core_ms: u64) {
        self.shared.set_cooldown_idle(group, core_ms);
    }

    /// The idle time (core-ms) `group`'s adaptive pool kept for its
    /// cooldown so far: what a pool continuing from the journal goes on
    /// counting from.
    pub fn cooldown_idle(&self, group: Option<&str>) -> u64 {
        self.shared.cooldown_idle(group)
    }

    /// Records the pool's Dask scheduler, so the scheduler file names it.
    pub fn set_dask(&self, endpoint: DaskEndpoint) {
        *self.shared.dask.lock() = Some(endpoint);
    }

    /// The pool's Dask scheduler, if it has one.
    pub fn dask(&self) -> Option<DaskEndpoint> {
        self.shared.dask.lock().clone()
    }

    /// Every worker it knows, ordered by id.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared.registry().list()
    }

    /// How many workers are registered and not gone, each name once.
    pub fn live_workers(&self) -> usize {
        self.shared.registry().live()
    }

    /// Asks worker `id` to retire at its next poll (at once if it is
    /// polling); `false` if it is unknown or already gone.
    pub fn retire(&self, id: WorkerId, reason: &str) -> bool {
        self.shared.retire(id, reason)
    }

    /// Asks every live worker to retire; returns how many were asked.
    pub fn retire_all(&self, reason: &str) -> usize {
        self.shared.retire_all(reason)
    }

    /// Records the cores of the pool's largest worker: tasks asking for
    /// more are refused at submission, and queued ones fail with why.
    pub fn set_max_task_cores(&self, cores: u32) {
        if self.shared.registry().set_max_cores(cores) > 0 {
            self.shared.changed();
        }
    }

    /// Records the memory of the pool's largest worker: tasks asking for
    /// more are refused, and queued ones fail with why.
    pub fn set_max_task_memory(&self, bytes: u64) {
        if self.shared.registry().set_max_memory(bytes) > 0 {
            self.shared.changed();
        }
    }

    /// Records the shape of the pool's workers, one per group: tasks no
    /// worker could hold (GPUs, named resources, group) are refused, and
    /// queued ones fail with why.
    pub fn set_worker_shapes(&self, shapes: Vec<crate::protocol::WorkerShape>) {
        if self.shared.registry().set_shapes(shapes) > 0 {
            self.shared.changed();
        }
    }

    /// Replaces the shape of `shape.group`'s workers with a larger one (its
    /// jobs ask for more memory after one ended OUT_OF_MEMORY): tasks up
    /// to the new size are taken from now on.
    pub fn grow_worker_shape(&self, shape: crate::protocol::WorkerShape) {
        let mut registry = self.shared.registry();
        let mut shapes = registry.worker_shapes().to_vec();
        match shapes.iter_mut().find(|s| s.group == shape.group) {
            Some(s) => *s = shape,
            None => shapes.push(shape),
        }
        let largest = shapes.iter().map(|s| s.memory_bytes).max().unwrap_or(1);
        let failed = registry.set_shapes(shapes) + registry.set_max_memory(largest);
        drop(registry);
        if failed > 0 {
            self.shared.changed();
        }
    }

    /// Records how the pool is sized: with a journal, a pool started on it
    /// again holds this size.
    pub fn set_pool_mode(&self, group: Option<&str>, mode: crate::journal::PoolMode) {
        self.shared.registry().set_pool_mode(group, mode);
    }

    /// How the pool was last sized: from the journal after a restart.
    pub fn pool_mode(&self, group: Option<&str>) -> Option<crate::journal::PoolMode> {
        self.shared.registry().pool_mode(group)
    }

    /// Records in the journal (if any) that the pool closed, so that it is
    /// not continued by mistake, and waits until that is durable.
    pub async fn record_closed(&self) {
        let mark = self.shared.registry().closed();
        if let Some((waiter, seq)) = mark {
            if let Err(e) = waiter.durable(seq).await {
                tracing::warn!(error = %e, "cannot record in the journal that the pool closed");
            }
        }
    }

    /// Whether this scheduler continues from a journal that had records.
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// What ready and running tasks ask of `group` (of the pool, for
    /// `None` in a pool without groups): see `tasks/demand.rs`.
    pub fn task_demand(&self, group: Option<&str>) -> crate::tasks::Ask {
        self.shared.registry().demand(group)
    }

    /// Says whether `group`'s jobs are stalled in Slurm's queue: its
    /// ready tasks then count for a later group that could hold them.
    pub fn set_stalled(&self, group: Option<&str>, stalled: bool) {
        self.shared.registry().set_stalled(group, stalled);
    }

    /// Routes the control API (`/v1/cluster/...`) to the returned channel,
    /// for the cluster this scheduler serves.
    /// A pool with groups attaches each group by its name.
    pub fn attach_control(
        &self,
        group: Option<String>,
        per_job: crate::config::PerJob,
    ) -> mpsc::UnboundedReceiver<ControlRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .control
            .lock()
            .attach(control::Control { group, tx, per_job });
        rx
    }

    /// Serves `GET /v1/cluster` from `source`, asked at each request.
    pub fn set_cluster_status_source(&self, source: StatusSource) {
        *self.shared.cluster_status.lock() = Some(source);
    }

    /// What the pool cost and used so far (`costs.rs`).
    pub fn report(&self) -> crate::protocol::Report {
        self.shared.report()
    }

    /// The pool's jobs' allocations, as Slurm's accounting has them now.
    pub fn set_allocations(&self, allocations: Vec<crate::accounting::Allocation>) {
        self.shared.set_allocations(allocations);
    }

    /// When the pool began (Unix ms), across restarts from the journal.
    pub fn began_ms(&self) -> u64 {
        self.shared.costs.lock().began_ms
    }

    /// Waits until at least `n` workers are live, or fails after `timeout`.
    pub async fn wait_for_workers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), SchedulerError> {
        let mut rx = self.shared.version.subscribe();
        let start = tokio::time::Instant::now();
        loop {
            if self.live_workers() >= n {
                return Ok(());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return Err(SchedulerError::WaitTimeout {
                    wanted: n,
                    registered: self.live_workers(),
                    waited: timeout,
                });
            }
        }
    }

    /// Waits for any change to the registry (a registration, an exit, a loss).
    pub async fn changed(&self) {
        let mut rx = self.shared.version.subscribe();
        let _ = rx.changed().await;
    }

    /// Returns if its journal can no longer be written (a full disk), with
    /// why; never without a journal. Changes are refused from then on, and
    /// a standalone scheduler stops: restarted from the journal, it
    /// continues from the last change it acknowledged.
    pub async fn journal_failed(&self) -> String {
        let waiter = self.shared.registry().journal_mark().map(|(w, _)| w);
        match waiter {
            Some(w) => w.failure().await,
            None => std::future::pending().await,
        }
    }

    /// Stops serving at once; held polls are cut off, so workers notice.
    pub fn stop(&self) {
        // Open keep-alive connections are served by their own tasks, which
        // outlive the server's: they must stop answering too.
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.stopping.notify_waiters();
        self.server.abort();
        self.monitor.abort();
        // A stopped scheduler records nothing more: its journal is closed
        // (what was queued written first) and free for a successor.
        let journal = self.shared.registry().release_journal();
        drop(journal);
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address `bind` names.
fn bind_ip(bind: &Bind) -> Result<IpAddr, SchedulerError> {
    Ok(match bind {
        Bind::Interface(name) => IpAddr::V4(crate::net::interface_ipv4(name)?),
        Bind::Host(ip) => *ip,
        Bind::Auto => {
            let ip = crate::net::host_address().unwrap_or(IpAddr::from([127, 0, 0, 1]));
            tracing::info!(address = %ip, "no interface or host given: listening on the host name's address");
            ip
        }
    })
}

/// The process's open-file limit, raised to its hard limit first: every
/// connection holds a file.
fn open_file_limit() -> u64 {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!(error = %e, "cannot raise the open-file limit");
    }
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// Declares workers lost when they fall silent.
/// The scheduler's own rounds: silent workers are declared lost, and the
/// journal (if any) is compacted once it is due.
async fn watch_heartbeats(shared: Arc<Shared>) {
    let bound = shared.config.lost_after();
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let due = shared
        .registry()
        .compaction_due(shared.config.journal_compact_after);
    let compaction = || async {
        match &due {
            Some(due) => due.notified().await,
            None => std::future::pending().await,
        }
    };
    let mut sample = tokio::time::interval(shared.config.timeline_interval);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if shared.registry().mark_lost(bound) > 0 {
                    shared.changed();
                }
            }
            _ = sample.tick() => page::sample(&shared),
            () = compaction() => {
                shared.registry().compact_if_due();
            }
        }
    }
}
