//! The scheduler that workers register with: an HTTP server (embedded in a
//! driver program, or standalone as `drover scheduler`) holding the registry
//! of workers, authenticated by a per-cluster token.

mod http;
mod registry;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::Timeout;
use crate::net::NetError;
use crate::protocol::{
    ClusterId, ClusterStatus, DaskEndpoint, SchedulerFile, SchedulerFileError, Token, WorkerId,
    WorkerInfo,
};
use registry::Registry;

/// Computes the status of the cluster a scheduler serves, on demand.
pub type StatusSource = Arc<dyn Fn() -> Option<ClusterStatus> + Send + Sync>;

/// What a client asks of the cluster a scheduler serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    /// Scale to this many workers.
    Scale(usize),
    /// Close the cluster.
    Close,
}

/// Where the scheduler listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// The IPv4 address of this interface (e.g. `ib0`).
    Interface(String),
    /// This address.
    Host(IpAddr),
}

/// How a scheduler runs. Intervals come from the environment where set
/// (`DROVER_HEARTBEAT_INTERVAL`, `DROVER_MISSED_HEARTBEATS`), so tests can
/// shorten them.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Where to listen.
    pub bind: Bind,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// How often workers poll, which is their heartbeat.
    pub heartbeat_interval: Duration,
    /// How many intervals of silence make a worker lost (at least 2).
    pub missed_heartbeats: u32,
    /// How many polls the scheduler holds open at once. Each held poll is a
    /// connection with its buffers; workers beyond this poll once per
    /// interval without holding one.
    pub max_held_polls: usize,
}

/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default count of missed heartbeats before a worker is lost.
pub const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
/// Default bound on polls held open at once.
pub const DEFAULT_MAX_HELD_POLLS: usize = 1024;

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, SchedulerError> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| SchedulerError::Config(format!("{name}: `{v}` is not a whole number"))),
        Err(_) => Ok(default),
    }
}

impl SchedulerConfig {
    /// A config for `bind` with intervals from the environment or defaults.
    pub fn new(bind: Bind) -> Result<Self, SchedulerError> {
        let heartbeat_interval = match std::env::var("DROVER_HEARTBEAT_INTERVAL") {
            Ok(v) => v
                .parse::<Timeout>()
                .map_err(|e| SchedulerError::Config(format!("DROVER_HEARTBEAT_INTERVAL: {e}")))?
                .duration(),
            Err(_) => DEFAULT_HEARTBEAT_INTERVAL,
        };
        SchedulerConfig {
            bind,
            port: 0,
            heartbeat_interval,
            missed_heartbeats: env_number("DROVER_MISSED_HEARTBEATS", DEFAULT_MISSED_HEARTBEATS)?,
            max_held_polls: env_number("DROVER_MAX_HELD_POLLS", DEFAULT_MAX_HELD_POLLS)?,
        }
        .validated()
    }

    /// This config, or why it cannot work.
    pub fn validated(self) -> Result<Self, SchedulerError> {
        if self.heartbeat_interval < Duration::from_millis(10) {
            return Err(SchedulerError::Config(format!(
                "heartbeat interval {:?} is too short (10 ms or more)",
                self.heartbeat_interval
            )));
        }
        if self.missed_heartbeats < 2 {
            return Err(SchedulerError::Config(format!(
                "missed heartbeats {} is too few: 2 or more, so one late poll does not lose a worker",
                self.missed_heartbeats
            )));
        }
        Ok(self)
    }

    /// How long a worker may be silent before it is lost.
    pub fn lost_after(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats
    }
}

/// A scheduler that could not start or be used.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A setting is unusable.
    #[error("scheduler configuration: {0}")]
    Config(String),
    /// The interface to bind to cannot be used.
    #[error(transparent)]
    Interface(#[from] NetError),
    /// Binding failed.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// The scheduler file could not be written.
    #[error(transparent)]
    File(#[from] SchedulerFileError),
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

/// State shared by the request handlers and the scheduler handle.
pub(crate) struct Shared {
    pub(crate) cluster_id: ClusterId,
    pub(crate) token: Token,
    pub(crate) config: SchedulerConfig,
    registry: Mutex<Registry>,
    /// Polls held open right now.
    pub(crate) held_polls: std::sync::atomic::AtomicUsize,
    /// Bumped on every change to the registry, for waiters.
    version: watch::Sender<u64>,
    /// Where cluster requests go, when a cluster is attached.
    pub(crate) control: Mutex<Option<mpsc::UnboundedSender<ControlRequest>>>,
    /// Where the attached cluster's status comes from.
    pub(crate) cluster_status: Mutex<Option<StatusSource>>,
    /// The pool's Dask scheduler, for `dask` pools.
    dask: Mutex<Option<DaskEndpoint>>,
    /// Set by `stop`: connections that outlive the server get no answers.
    pub(crate) stopped: std::sync::atomic::AtomicBool,
    /// Notified by `stop`, so held polls end at once.
    pub(crate) stopping: Notify,
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// A running scheduler. Dropping it stops the server.
pub struct Scheduler {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    monitor: JoinHandle<()>,
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
        let ip = match &config.bind {
            Bind::Interface(name) => IpAddr::V4(crate::net::interface_ipv4(name)?),
            Bind::Host(ip) => *ip,
        };
        let wanted = SocketAddr::new(ip, config.port);
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .map_err(|cause| SchedulerError::Bind {
                addr: wanted,
                cause,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|cause| SchedulerError::Bind {
                addr: wanted,
                cause,
            })?;
        let shared = Arc::new(Shared {
            cluster_id,
            token,
            config,
            registry: Mutex::new(Registry::default()),
            held_polls: std::sync::atomic::AtomicUsize::new(0),
            version: watch::channel(0).0,
            control: Mutex::new(None),
            cluster_status: Mutex::new(None),
            dask: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
            stopping: Notify::new(),
        });
        let app = http::router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "scheduler server stopped");
            }
        });
        let monitor = tokio::spawn(watch_heartbeats(shared.clone()));
        tracing::info!(
            address = %format!("http://{addr}"),
            cluster = %shared.cluster_id,
            heartbeat_ms = shared.config.heartbeat_interval.as_millis() as u64,
            "scheduler listening"
        );
        Ok(Scheduler {
            shared,
            addr,
            server,
            monitor,
        })
    }

    /// The socket address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://10.77.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
        self.shared
            .held_polls
            .load(std::sync::atomic::Ordering::Relaxed)
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
            pid: std::process::id(),
            started_at: crate::protocol::unix_ms() / 1000,
            dask: self.dask(),
        }
    }

    /// Records how busy the pool's Dask workers are, as Dask reports it
    /// (tasks executing or ready, by drover worker name), so that idleness
    /// means the same for them as for native workers.
    pub fn set_dask_activity(&self, busy: &std::collections::HashMap<String, u32>) {
        self.shared.registry().set_dask_activity(busy);
        self.shared.changed();
    }

    /// Records the pool's Dask scheduler, so the scheduler file names it.
    pub fn set_dask(&self, endpoint: DaskEndpoint) {
        *self.shared.dask.lock().unwrap_or_else(|e| e.into_inner()) = Some(endpoint);
    }

    /// The pool's Dask scheduler, if it has one.
    pub fn dask(&self) -> Option<DaskEndpoint> {
        self.shared
            .dask
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes its scheduler file to `path` (atomically, mode 0600).
    pub fn write_scheduler_file(&self, path: &Path) -> Result<(), SchedulerError> {
        Ok(self.scheduler_file().write(path)?)
    }

    /// Every worker it knows, ordered by id.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared.registry().list()
    }

    /// How many workers are registered and not gone.
    pub fn live_workers(&self) -> usize {
        self.shared.registry().live()
    }

    /// Asks worker `id` to retire at its next poll (at once if it is
    /// polling); `false` if it is unknown or already gone.
    pub fn retire(&self, id: WorkerId, reason: &str) -> bool {
        let done = self.shared.registry().retire(id, reason);
        if done {
            self.shared.changed();
        }
        done
    }

    /// Cores asked for by ready and running tasks.
    pub fn task_demand_cores(&self) -> u64 {
        self.shared.registry().tasks.demand_cores()
    }

    /// Asks every live worker to retire; returns how many were asked.
    pub fn retire_all(&self, reason: &str) -> usize {
        let n = self.shared.registry().retire_all(reason);
        if n > 0 {
            self.shared.changed();
        }
        n
    }

    /// Routes the control API (`/v1/cluster/...`) to the returned channel,
    /// for the cluster this scheduler serves.
    pub fn attach_control(&self) -> mpsc::UnboundedReceiver<ControlRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self
            .shared
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Serves `GET /v1/cluster` from `source`, asked at each request.
    pub fn set_cluster_status_source(&self, source: StatusSource) {
        *self
            .shared
            .cluster_status
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(source);
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
            let live = self.live_workers();
            if live >= n {
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

    /// Stops serving at once; held polls are cut off, so workers notice.
    pub fn stop(&self) {
        // Open keep-alive connections are served by their own tasks, which
        // outlive the server's: they must stop answering too.
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.stopping.notify_waiters();
        self.server.abort();
        self.monitor.abort();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Declares workers lost when they fall silent.
async fn watch_heartbeats(shared: Arc<Shared>) {
    let bound = shared.config.lost_after();
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.registry().mark_lost(bound) > 0 {
            shared.changed();
        }
    }
}
