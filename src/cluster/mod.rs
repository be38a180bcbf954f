//! `SlurmCluster`: a pool of worker jobs on Slurm that a driver scales up
//! and down. It runs an embedded scheduler, submits every worker as its own
//! job (job arrays when many are wanted at once), and a reconcile loop
//! drives the pool toward the requested size: one `squeue` per poll for all
//! its jobs, one `scancel` for many, graceful retirement on scale-down,
//! replacement of vanished jobs, and a stop after repeated start-up
//! failures. Closing, dropping, or the driver dying all end every job.

mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{Directive, JobSpec, Memory, SpecError, Timeout, WorkerKind};
use crate::dask::{DaskApi, DaskBind, DaskScheduler};
use crate::protocol::{ClusterStatus, DaskEndpoint, JobStatus, StartupFailure, WorkerState};
use crate::scheduler::{Bind, ControlRequest, Scheduler, SchedulerConfig, SchedulerError};
use crate::script::ScriptError;
use crate::slurm::{JobInfo, JobRef, JobState, Slurm, SlurmError, SubmitOptions};
pub use state::Limits;
use state::{describe_failure, Action, Plan, State};

/// How a cluster runs. Intervals come from the environment where set, so
/// tests can shorten them: `DROVER_POLL_INTERVAL`, `DROVER_RETRY_BACKOFF`,
/// `DROVER_CLOSE_TIMEOUT`, `DROVER_IDLE_TIMEOUT`, `DROVER_ADAPT_COOLDOWN`
/// `DROVER_REPLACE_LEAD` (durations), `DROVER_MAX_STARTUP_FAILURES`.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where the embedded scheduler listens: an interface the compute nodes
    /// reach (the driver side of `ib0`), or an address.
    pub scheduler: Bind,
    /// Where to write the scheduler file (default: in the log directory).
    pub scheduler_file: Option<PathBuf>,
    /// How often to ask Slurm about the cluster's jobs.
    pub poll_interval: Duration,
    /// Consecutive start-up failures after which submitting stops.
    pub max_startup_failures: u32,
    /// First wait after a failure; doubles with each further one.
    pub retry_backoff: Duration,
    /// How long `close` waits for retired workers before cancelling.
    pub close_timeout: Duration,
    /// Submit several workers as one job array.
    pub arrays: bool,
    /// Start a watcher process that cancels every job if the driver dies.
    pub reaper: bool,
    /// Close the cluster, then exit, on SIGINT or SIGTERM.
    pub handle_signals: bool,
    /// The `slurm.conf` for the watcher and for cancelling on drop.
    pub slurm_conf: Option<PathBuf>,
    /// With `adapt`: how long a worker must be idle before it is retired.
    pub idle_timeout: Duration,
    /// With `adapt`: how long to wait before reversing the direction of scaling.
    pub cooldown: Duration,
    /// How long before a worker leaves for its job's time limit its
    /// replacement is submitted, on top of the last observed start-up time.
    pub replace_lead: Duration,
    /// Site limits: pending jobs at once, submissions per minute.
    pub limits: Limits,
    /// For `dask` pools: an existing Dask scheduler to attach to (its
    /// scheduler file, served with an HTTP dashboard address), instead of
    /// starting one.
    pub dask_scheduler_file: Option<PathBuf>,
    /// For `dask` pools: how long the Dask scheduler may take to start.
    pub dask_start_timeout: Duration,
}

fn env_duration(name: &str, default: Duration) -> Result<Duration, ClusterError> {
    match std::env::var(name) {
        Ok(v) => v
            .parse::<Timeout>()
            .map(Timeout::duration)
            .map_err(|e| ClusterError::Config(format!("{name}: {e}"))),
        Err(_) => Ok(default),
    }
}

impl ClusterOptions {
    /// Options with the scheduler on `scheduler` and the rest from the
    /// environment or defaults.
    pub fn new(scheduler: Bind) -> Result<Self, ClusterError> {
        let max_startup_failures = match std::env::var("DROVER_MAX_STARTUP_FAILURES") {
            Ok(v) => v.trim().parse().map_err(|_| {
                ClusterError::Config(format!(
                    "DROVER_MAX_STARTUP_FAILURES: `{v}` is not a whole number"
                ))
            })?,
            Err(_) => 3,
        };
        Ok(ClusterOptions {
            scheduler,
            scheduler_file: None,
            poll_interval: env_duration("DROVER_POLL_INTERVAL", Duration::from_secs(2))?,
            max_startup_failures,
            retry_backoff: env_duration("DROVER_RETRY_BACKOFF", Duration::from_secs(2))?,
            close_timeout: env_duration("DROVER_CLOSE_TIMEOUT", Duration::from_secs(10))?,
            arrays: true,
            reaper: true,
            handle_signals: true,
            slurm_conf: std::env::var_os("SLURM_CONF").map(PathBuf::from),
            idle_timeout: env_duration("DROVER_IDLE_TIMEOUT", Duration::from_secs(60))?,
            cooldown: env_duration("DROVER_ADAPT_COOLDOWN", Duration::from_secs(15))?,
            replace_lead: env_duration("DROVER_REPLACE_LEAD", Duration::from_secs(30))?,
            limits: Limits::default(),
            dask_scheduler_file: None,
            dask_start_timeout: env_duration("DROVER_DASK_START_TIMEOUT", Duration::from_secs(60))?,
        })
    }
}

/// A cluster that cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A setting is unusable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// The job specification is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The job script does not render.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The scheduler could not start.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// Slurm refused.
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    /// The Dask scheduler could not be started or reached.
    #[error(transparent)]
    Dask(#[from] crate::dask::DaskError),
    /// A worker job ended before its worker registered.
    #[error("{}; last lines of its log:\n{}", describe_failure(.0), .0.log_tail)]
    StartupFailed(StartupFailure),
    /// Submitting stopped after repeated start-up failures.
    #[error("{0}")]
    Stopped(String),
    /// Not enough workers registered in time.
    #[error("{registered} of {wanted} workers registered within {waited:?}; {jobs}")]
    WaitTimeout {
        /// Workers asked for.
        wanted: usize,
        /// Workers that registered.
        registered: usize,
        /// How long it waited.
        waited: Duration,
        /// The jobs by state, with pending reasons.
        jobs: String,
    },
    /// The cluster is closed.
    #[error("the cluster is closed")]
    Closed,
    /// A file could not be read or written.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        cause: std::io::Error,
    },
}

struct Inner {
    spec: JobSpec,
    script: String,
    slurm: Arc<dyn Slurm>,
    scheduler: Scheduler,
    scheduler_file: PathBuf,
    options: ClusterOptions,
    state: Mutex<State>,
    /// Wakes the reconcile loop early (after `scale`).
    wake: Notify,
    /// Bumped after every reconcile round.
    rounds: watch::Sender<u64>,
    /// Notified when a client asks the cluster to close.
    close_requested: Notify,
    slurm_calls: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Set once the site refused a job array.
    arrays_refused: AtomicBool,
    /// Set while the pool sizes itself to the work.
    adapt: Mutex<Option<Adaptive>>,
    /// The Dask side of a `dask` pool.
    dask: Option<DaskPool>,
}

/// A `dask` pool's Dask scheduler and what it last said.
struct DaskPool {
    endpoint: DaskEndpoint,
    api: DaskApi,
    /// The scheduler process, when this pool started it.
    process: tokio::sync::Mutex<Option<DaskScheduler>>,
    /// Dask workers at the last look.
    seen: Mutex<Option<Vec<crate::dask::DaskWorker>>>,
    /// What Dask's adaptive target was at the last look (adaptive pools).
    desired: Mutex<Option<usize>>,
}

impl DaskPool {
    /// Asks the Dask scheduler who is registered; remembers the answer.
    async fn refresh(&self) -> Option<usize> {
        let workers = match self.api.workers().await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Dask scheduler's workers");
                None
            }
        };
        let n = workers.as_ref().map(Vec::len);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = workers;
        n
    }

    /// For adaptive pools: asks Dask how many workers it wants and how busy
    /// each one is, and hands the latter to the scheduler, so idleness
    /// means the same for Dask workers as for native ones.
    async fn refresh_adaptive(&self, scheduler: &Scheduler) {
        let desired = match self.api.desired_workers().await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read Dask's adaptive target");
                None
            }
        };
        *self.desired.lock().unwrap_or_else(|e| e.into_inner()) = desired;
        match self.api.activity().await {
            Ok(activity) => {
                let busy = activity
                    .into_iter()
                    .filter_map(|(name, n)| {
                        crate::dask::drover_name(&name).map(|d| (d.to_string(), n))
                    })
                    .collect();
                scheduler.set_dask_activity(&busy);
            }
            Err(e) => {
                // Unknown load counts as busy: an adaptive pool then does
                // not shrink, rather than retire workers in mid-task.
                tracing::warn!(error = %e, "cannot read the Dask workers' load; holding them as busy");
                let busy = self
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .flatten()
                    .filter_map(|w| crate::dask::drover_name(&w.name).map(|d| (d.to_string(), 1)))
                    .collect();
                scheduler.set_dask_activity(&busy);
            }
        }
    }

    fn desired(&self) -> Option<usize> {
        *self.desired.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seen(&self) -> Option<usize> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Vec::len)
    }
}

/// An adaptive pool's range and memory of its last moves.
#[derive(Debug)]
struct Adaptive {
    min_jobs: usize,
    max_jobs: usize,
    last_up: Option<Instant>,
    last_down: Option<Instant>,
    decision: String,
}

/// A pool of workers on Slurm.
pub struct SlurmCluster {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
    signals: Option<JoinHandle<()>>,
    reaper: Mutex<Option<std::process::Child>>,
    closed: AtomicBool,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_path(&self, job_id: Option<u64>, ext: &str) -> PathBuf {
        let id = job_id.map(|j| j.to_string()).unwrap_or_else(|| "%j".into());
        self.spec
            .log_directory
            .join(format!("{}-{id}.{ext}", self.spec.job_name))
    }

    /// One round: look at Slurm and the scheduler, decide, act, publish.
    async fn reconcile(&self) {
        let listing = match self.slurm.jobs().await {
            Ok(all) => Some(
                all.into_iter()
                    .filter(|j| j.name == self.spec.job_name)
                    .collect::<Vec<JobInfo>>(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the cluster's jobs");
                self.state().last_error = Some(e.to_string());
                None
            }
        };
        if let Some(dask) = &self.dask {
            dask.refresh().await;
            if self
                .adapt
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
            {
                dask.refresh_adaptive(&self.scheduler).await;
            }
        }
        let workers = self.scheduler.workers();
        if listing.is_some() {
            self.adapt_target();
        }
        let plan = self
            .state()
            .reconcile(listing.as_deref(), &workers, Instant::now());
        self.act(plan).await;
        self.publish();
    }

    /// Moves an adaptive pool's target toward the demand (cores asked by
    /// ready and running tasks), within its range: up at once unless it
    /// just went down, down only by jobs that are pending or whose workers
    /// have been idle longer than the idle timeout, and not right after
    /// going up. Jobs already pending count toward the target, so a slow
    /// queue is never oversubmitted.
    fn adapt_target(&self) {
        let mut guard = self.adapt.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = guard.as_mut() else { return };
        let now = Instant::now();
        let cooldown = self.options.cooldown;
        let mut st = self.state();
        let current = st.target_jobs;
        // Native pools follow the cores their tasks ask for; Dask pools
        // follow Dask's own adaptive target (in workers).
        let (needed_jobs, demand) = match &self.dask {
            None => {
                let cores = self.scheduler.task_demand_cores();
                (
                    cores.div_ceil(u64::from(self.spec.cores)) as usize,
                    format!("{cores} cores in ready and running tasks"),
                )
            }
            Some(dask) => match dask.desired() {
                Some(n) => (
                    n.div_ceil(self.spec.processes as usize),
                    format!("Dask wants {n} workers"),
                ),
                None => (current, "Dask's target unknown".to_string()),
            },
        };
        let wanted = needed_jobs.clamp(a.min_jobs, a.max_jobs);
        let cooled = |last: Option<Instant>| last.is_none_or(|t| now.duration_since(t) >= cooldown);
        let decision = if wanted > current {
            if cooled(a.last_down) {
                st.target_jobs = wanted;
                a.last_up = Some(now);
                format!("up {current} -> {wanted} jobs: demand {demand}")
            } else {
                format!("holding {current} jobs: demand wants {wanted}, cooling down after a scale-down")
            }
        } else if wanted < current {
            let idle_before = crate::protocol::unix_ms()
                .saturating_sub(self.options.idle_timeout.as_millis() as u64);
            let removable = st.removable_jobs(idle_before);
            let target = wanted.max(current.saturating_sub(removable));
            if target < current && cooled(a.last_up) {
                st.target_jobs = target;
                a.last_down = Some(now);
                format!(
                    "down {current} -> {target} jobs: demand {demand}; idle longer than {:?} or pending",
                    self.options.idle_timeout
                )
            } else if target < current {
                format!("holding {current} jobs: cooling down after a scale-up")
            } else {
                format!(
                    "holding {current} jobs: demand wants {wanted}, workers not idle for {:?} yet",
                    self.options.idle_timeout
                )
            }
        } else {
            format!("holding {current} jobs: demand {demand}")
        };
        if decision != a.decision {
            tracing::info!(adapt = %decision, "adaptive pool");
            a.decision = decision;
        }
    }

    async fn act(&self, plan: Plan) {
        for job in &plan.failed {
            let failure = self.failure_of(*job);
            tracing::warn!("{}", describe_failure(&failure));
            self.state().record_failure(failure);
        }
        if !plan.cancel.is_empty() {
            tracing::info!(jobs = ?plan.cancel.iter().map(|j| j.to_string()).collect::<Vec<_>>(), "cancelling");
            if let Err(e) = self.slurm.cancel(&plan.cancel).await {
                tracing::warn!(error = %e, "cancel failed");
                self.state().last_error = Some(e.to_string());
            }
        }
        for id in &plan.retire {
            self.scheduler.retire(*id, "the pool is scaling down");
        }
        if plan.submit > 0 {
            self.submit(plan.submit).await;
        }
    }

    /// Submits `n` jobs, keeping them off nodes that just lost their
    /// workers; should Slurm refuse that, once more without.
    async fn submit(&self, n: usize) {
        let mut exclude = self.state().excluded_nodes(Instant::now());
        if !exclude.is_empty() {
            tracing::info!(nodes = ?exclude, "keeping new jobs off nodes that lost their workers");
            // sbatch's --exclude replaces the script's own: keep the user's too.
            exclude.extend(
                self.spec
                    .directives()
                    .into_iter()
                    .filter(|d| d.option == "--exclude" || d.option == "-x")
                    .filter_map(|d| d.value),
            );
        }
        if self.submit_with(n, exclude.clone()).await.is_err() && !exclude.is_empty() {
            tracing::warn!("Slurm refused the jobs with --exclude; submitting them anywhere");
            self.state().suspect_nodes.clear();
            let _ = self.submit_with(n, Vec::new()).await;
        }
    }

    /// Submits `n` jobs: one array when allowed, else one by one. On a
    /// refusal, returns it after booking it only when nothing was excluded.
    async fn submit_with(&self, n: usize, exclude: Vec<String>) -> Result<(), SlurmError> {
        let excluding = !exclude.is_empty();
        let now = Instant::now();
        let use_array =
            self.options.arrays && n > 1 && !self.arrays_refused.load(Ordering::Relaxed);
        if use_array {
            let options = SubmitOptions {
                array: Some(n as u32),
                exclude: exclude.clone(),
                ..Default::default()
            };
            match self.slurm.submit(&self.script, &options).await {
                Ok(array) => {
                    tracing::info!(array = %array, tasks = n, "submitted workers as a job array");
                    self.state()
                        .submitted((0..n as u32).map(|task| JobRef::Task { array, task }), now);
                    return Ok(());
                }
                Err(e) if e.to_string().contains("rray") => {
                    tracing::warn!(error = %e, "job arrays refused; submitting one by one from now on");
                    self.arrays_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    if !excluding {
                        self.state().submit_failed(&e.to_string());
                    }
                    return Err(e);
                }
            }
        }
        let options = SubmitOptions {
            exclude,
            ..Default::default()
        };
        for i in 0..n {
            match self.slurm.submit(&self.script, &options).await {
                Ok(id) => {
                    tracing::info!(job = %id, "submitted worker job");
                    self.state().submitted([JobRef::Job(id)], now);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "submission refused");
                    if !excluding || i > 0 {
                        self.state().submit_failed(&e.to_string());
                        return Ok(());
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn failure_of(&self, job: JobRef) -> StartupFailure {
        let st = self.state();
        let r = &st.jobs[&job];
        let id = r.job_id.map(|j| j.get());
        StartupFailure {
            job: job.to_string(),
            state: r.state.to_string(),
            exit_code: r.exit_code,
            log_tail: [self.log_path(id, "out"), self.log_path(id, "err")]
                .iter()
                .filter_map(|p| tail(p, 20).map(|t| format!("==> {} <==\n{t}", p.display())))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The status now: job states as of the last look at Slurm, workers as
    /// the scheduler has them this instant.
    fn status(&self) -> ClusterStatus {
        let mut by_job: std::collections::HashMap<JobRef, Vec<crate::protocol::WorkerInfo>> =
            Default::default();
        for w in self.scheduler.workers() {
            if let Some(key) = state::job_of(&w) {
                by_job.entry(key).or_default().push(w);
            }
        }
        let st = self.state();
        let jobs = st
            .jobs
            .values()
            .map(|r| {
                let workers = by_job.remove(&r.job).unwrap_or_default();
                let live = workers.iter().any(|w| {
                    matches!(
                        w.state,
                        WorkerState::Running | WorkerState::Retiring | WorkerState::Draining
                    )
                });
                // Registered workers show the job runs, and know its id and
                // node, before the next look at Slurm does.
                let state = match &r.state {
                    JobState::Pending | JobState::Configuring if live => "RUNNING".to_string(),
                    s => s.to_string(),
                };
                let job_id = r
                    .job_id
                    .map(|j| j.get())
                    .or_else(|| workers.iter().find_map(|w| w.slurm.job_id));
                let node = r
                    .node
                    .clone()
                    .or_else(|| workers.first().map(|w| w.hostname.clone()));
                JobStatus {
                    job: r.job.to_string(),
                    job_id,
                    state,
                    reason: r.reason.clone(),
                    node,
                    exit_code: r.exit_code,
                    log: self.log_path(job_id, "out").display().to_string(),
                    workers,
                    action: match r.action {
                        Some(Action::Retiring) => Some("retiring".to_string()),
                        Some(Action::Cancelling) => Some("cancelling".to_string()),
                        None if r.expiring && r.state.is_active() => {
                            Some("leaving before its time limit; replaced".to_string())
                        }
                        None => None,
                    },
                }
            })
            .collect();
        ClusterStatus {
            cluster_id: self.scheduler.cluster_id().clone(),
            job_name: self.spec.job_name.clone(),
            target_workers: st.target_jobs * self.spec.processes as usize,
            target_jobs: st.target_jobs,
            processes: self.spec.processes,
            registered: self.scheduler.live_workers(),
            dask: self.dask.as_ref().map(|d| crate::protocol::DaskStatus {
                address: d.endpoint.address.clone(),
                http: d.endpoint.http.clone(),
                scheduler_file: d.endpoint.scheduler_file.display().to_string(),
                workers: d.seen(),
            }),
            jobs,
            stopped: st.stopped.clone(),
            last_error: st.last_error.clone(),
            failures: st.failures.clone(),
            held_back: st.held_back.clone(),
            submitted: st.submitted,
            slurm_calls: (self.slurm_calls)(),
            log_directory: self.spec.log_directory.display().to_string(),
            adapt: self
                .adapt
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|a| {
                    format!(
                        "{}..{} workers; {}",
                        a.min_jobs * self.spec.processes as usize,
                        a.max_jobs * self.spec.processes as usize,
                        a.decision
                    )
                }),
        }
    }

    fn publish(&self) {
        self.rounds.send_modify(|n| *n += 1);
    }
}

/// How often `wait_for_workers` asks the Dask scheduler while only Dask
/// registrations are missing.
const DASK_WAIT_POLL: Duration = Duration::from_millis(100);

/// Starts (or attaches to) a `dask` pool's Dask scheduler and names it in
/// drover's scheduler file, where the workers find it.
async fn start_dask(
    spec: &JobSpec,
    options: &ClusterOptions,
    scheduler: &Scheduler,
) -> Result<DaskPool, ClusterError> {
    let (endpoint, process) = match &options.dask_scheduler_file {
        Some(file) => (crate::dask::read_scheduler_file(file)?, None),
        None => {
            let bind = match &options.scheduler {
                Bind::Interface(i) => DaskBind::Interface(i.clone()),
                Bind::Host(ip) => DaskBind::Host(*ip),
            };
            let dir = spec.log_directory.join(format!("{}.dask", spec.job_name));
            std::fs::create_dir_all(&dir).map_err(|cause| ClusterError::Io {
                what: format!("creating {}", dir.display()),
                cause,
            })?;
            let process =
                DaskScheduler::start(&spec.python, &bind, &dir, options.dask_start_timeout).await?;
            (process.endpoint().clone(), Some(process))
        }
    };
    scheduler.set_dask(endpoint.clone());
    Ok(DaskPool {
        api: DaskApi::new(&endpoint.http),
        endpoint,
        process: tokio::sync::Mutex::new(process),
        seen: Mutex::new(None),
        desired: Mutex::new(None),
    })
}

/// The last `n` lines of a file, if it exists and has any.
pub(crate) fn tail(path: &Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return None;
    }
    Some(lines[lines.len().saturating_sub(n)..].join("\n"))
}

async fn run_loop(
    inner: Arc<Inner>,
    mut control: tokio::sync::mpsc::UnboundedReceiver<ControlRequest>,
) {
    loop {
        inner.reconcile().await;
        tokio::select! {
            _ = tokio::time::sleep(inner.options.poll_interval) => {}
            _ = inner.wake.notified() => {}
            request = control.recv() => match request {
                Some(ControlRequest::Scale(n)) => {
                    let jobs = n.div_ceil(inner.spec.processes as usize);
                    tracing::info!(workers = n, jobs, "scale requested through the scheduler");
                    *inner.adapt.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    set_target(&inner, jobs);
                }
                Some(ControlRequest::Close) => {
                    tracing::info!("close requested through the scheduler");
                    inner.close_requested.notify_waiters();
                }
                None => {}
            },
        }
    }
}

fn set_target(inner: &Inner, jobs: usize) {
    let mut st = inner.state();
    st.target_jobs = jobs;
    // Asking again is how a user retries after a crash loop.
    if st.stopped.take().is_some() {
        st.consecutive_failures = 0;
        st.next_submit_at = Instant::now();
    }
    drop(st);
    inner.wake.notify_one();
}

impl SlurmCluster {
    /// Starts a cluster: its scheduler, its reconcile loop, and (unless
    /// disabled) the watcher that cancels its jobs if this process dies.
    /// It starts with no workers; call `scale`.
    pub async fn new(
        spec: JobSpec,
        options: ClusterOptions,
        slurm: Arc<dyn Slurm>,
    ) -> Result<SlurmCluster, ClusterError> {
        Self::with_call_counter(spec, options, slurm, Box::new(|| 0)).await
    }

    /// Like `new`, with the command-line Slurm backend, whose commands are
    /// counted in the status.
    pub async fn with_cli(
        spec: JobSpec,
        options: ClusterOptions,
        slurm: crate::slurm::SlurmCli,
    ) -> Result<SlurmCluster, ClusterError> {
        let counter = slurm.clone();
        Self::with_call_counter(
            spec,
            options,
            Arc::new(slurm),
            Box::new(move || counter.calls()),
        )
        .await
    }

    async fn with_call_counter(
        mut spec: JobSpec,
        options: ClusterOptions,
        slurm: Arc<dyn Slurm>,
        slurm_calls: Box<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<SlurmCluster, ClusterError> {
        let scheduler = Scheduler::start(SchedulerConfig::new(options.scheduler.clone())?).await?;
        let id = scheduler.cluster_id().clone();
        // Every job carries the cluster id, in its name and its comment.
        spec.job_name = format!("{}-{id}", spec.job_name);
        spec.job_extra_directives
            .push(Directive::new("--comment", format!("drover:{id}")));
        let scheduler_file = options.scheduler_file.clone().unwrap_or_else(|| {
            spec.log_directory
                .join(format!("{}.scheduler.json", spec.job_name))
        });
        spec.scheduler_file = Some(scheduler_file.clone());
        spec.ensure_log_directory()
            .map_err(|cause| ClusterError::Io {
                what: format!("creating log directory {}", spec.log_directory.display()),
                cause,
            })?;
        let dask = match spec.kind {
            WorkerKind::Native => None,
            WorkerKind::Dask => Some(start_dask(&spec, &options, &scheduler).await?),
        };
        scheduler.write_scheduler_file(&scheduler_file)?;
        let script = crate::script::render(&spec)?;
        let control = scheduler.attach_control();
        let mut books = State::new(
            options.max_startup_failures,
            options.retry_backoff,
            options.poll_interval * 2 + Duration::from_secs(5),
        );
        books.replace_lead = options.replace_lead;
        books.limits = options.limits;
        let inner = Arc::new(Inner {
            state: Mutex::new(books),
            spec,
            script,
            slurm,
            scheduler,
            scheduler_file,
            options,
            wake: Notify::new(),
            rounds: watch::channel(0).0,
            close_requested: Notify::new(),
            slurm_calls,
            arrays_refused: AtomicBool::new(false),
            adapt: Mutex::new(None),
            dask,
        });
        tracing::info!(
            cluster = %id,
            scheduler = %inner.scheduler.url(),
            file = %inner.scheduler_file.display(),
            "cluster started"
        );
        let reaper = if inner.options.reaper {
            Some(spawn_reaper(&inner)?)
        } else {
            None
        };
        let weak = Arc::downgrade(&inner);
        inner
            .scheduler
            .set_cluster_status_source(Arc::new(move || weak.upgrade().map(|i| i.status())));
        let task = tokio::spawn(run_loop(inner.clone(), control));
        let cluster = SlurmCluster {
            signals: None,
            task,
            reaper: Mutex::new(reaper),
            closed: AtomicBool::new(false),
            inner,
        };
        Ok(cluster.watch_signals())
    }

    fn watch_signals(mut self) -> Self {
        if !self.inner.options.handle_signals {
            return self;
        }
        let inner = self.inner.clone();
        self.signals = Some(tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            let code = tokio::select! {
                _ = term.recv() => 143,
                _ = int.recv() => 130,
            };
            tracing::info!("signal received: closing the cluster");
            close_jobs(&inner).await;
            std::process::exit(code);
        }));
        self
    }

    /// Asks for `n` workers (`n / processes` jobs, rounded up).
    pub fn scale(&self, n: usize) {
        self.scale_jobs(n.div_ceil(self.inner.spec.processes as usize));
    }

    /// Asks for `k` jobs; stops adapting.
    pub fn scale_jobs(&self, k: usize) {
        tracing::info!(jobs = k, "scaling");
        *self.inner.adapt.lock().unwrap_or_else(|e| e.into_inner()) = None;
        set_target(&self.inner, k);
    }

    /// Sizes the pool to its work from now on: between `min` and `max`
    /// workers, growing with the cores that ready and running tasks ask
    /// for (for Dask pools: with Dask's own adaptive target), shrinking as
    /// workers stay idle past the idle timeout (for Dask workers: no task
    /// executing or ready on them, as Dask reports).
    pub fn adapt(&self, min: usize, max: usize) {
        let p = self.inner.spec.processes as usize;
        let (min_jobs, max_jobs) = (min.div_ceil(p), max.max(min).div_ceil(p));
        tracing::info!(min, max, "adapting");
        *self.inner.adapt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Adaptive {
            min_jobs,
            max_jobs,
            last_up: None,
            last_down: None,
            decision: String::new(),
        });
        set_target(&self.inner, min_jobs);
    }

    /// Asks for enough jobs to hold `cores` cores.
    pub fn scale_cores(&self, cores: u32) {
        self.scale_jobs(cores.div_ceil(self.inner.spec.cores) as usize);
    }

    /// Asks for enough jobs to hold `memory`.
    pub fn scale_memory(&self, memory: Memory) {
        self.scale_jobs(memory.bytes().div_ceil(self.inner.spec.memory.bytes()) as usize);
    }

    /// Waits until `n` workers have registered. Fails early, with the
    /// job's state, exit code and log tail, when a job fails before its
    /// worker registers, or when submitting has stopped; at the timeout it
    /// says where the jobs are (PENDING with their reasons...).
    pub async fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<(), ClusterError> {
        let start = tokio::time::Instant::now();
        let failures_before = self.inner.state().failures_seen;
        let mut rounds = self.inner.rounds.subscribe();
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Err(ClusterError::Closed);
            }
            if self.inner.scheduler.live_workers() >= n {
                match &self.inner.dask {
                    None => return Ok(()),
                    // What counts is what the Dask scheduler sees.
                    Some(dask) => {
                        if dask.refresh().await.unwrap_or(0) >= n {
                            return Ok(());
                        }
                    }
                }
            }
            {
                let st = self.inner.state();
                if let Some(stopped) = &st.stopped {
                    return Err(ClusterError::Stopped(stopped.clone()));
                }
                if st.failures_seen > failures_before {
                    if let Some(f) = st.failures.last() {
                        return Err(ClusterError::StartupFailed(f.clone()));
                    }
                }
            }
            let left = timeout.saturating_sub(start.elapsed());
            // drover's workers are all in: only Dask's registrations are
            // awaited, and Dask does not say when they come; ask it often.
            let dask_pending =
                self.inner.dask.is_some() && self.inner.scheduler.live_workers() >= n;
            let woke = tokio::select! {
                r = rounds.changed() => r.is_ok(),
                _ = self.inner.scheduler.changed() => true,
                _ = tokio::time::sleep(DASK_WAIT_POLL), if dask_pending => true,
                _ = tokio::time::sleep(left) => false,
            };
            if !woke {
                return Err(ClusterError::WaitTimeout {
                    wanted: n,
                    registered: match &self.inner.dask {
                        Some(dask) => dask.seen().unwrap_or(0),
                        None => self.inner.scheduler.live_workers(),
                    },
                    waited: timeout,
                    jobs: summarize(&self.inner.status()),
                });
            }
        }
    }

    /// The cluster's status: target, every job with its state, pending
    /// reason, node, workers and log, and what went wrong.
    pub fn status(&self) -> ClusterStatus {
        self.inner.status()
    }

    /// Every job of the cluster, with its workers (see `status`).
    pub fn workers(&self) -> Vec<JobStatus> {
        self.inner.status().jobs
    }

    /// The stdout and stderr logs of the job that runs `worker` (a worker
    /// name or id, or a job id).
    pub fn logs(&self, worker: &str) -> Result<String, ClusterError> {
        let status = self.inner.status();
        let job = find_job(&status, worker).ok_or_else(|| ClusterError::Io {
            what: format!("logs of `{worker}`"),
            cause: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such worker or job in this cluster",
            ),
        })?;
        let out = PathBuf::from(&job.log);
        let err = out.with_extension("err");
        Ok([out, err]
            .iter()
            .map(|p| {
                format!(
                    "==> {} <==\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// The job script every worker job is submitted with.
    pub fn job_script(&self) -> &str {
        &self.inner.script
    }

    /// The scheduler file workers and tools read.
    pub fn scheduler_file(&self) -> &Path {
        &self.inner.scheduler_file
    }

    /// The scheduler's address.
    pub fn address(&self) -> String {
        self.inner.scheduler.url()
    }

    /// The cluster's id, carried by every one of its jobs.
    pub fn cluster_id(&self) -> String {
        self.inner.scheduler.cluster_id().to_string()
    }

    /// The Dask scheduler of a `dask` pool.
    pub fn dask(&self) -> Option<DaskEndpoint> {
        self.inner.dask.as_ref().map(|d| d.endpoint.clone())
    }

    /// The Slurm job name of every job of the cluster.
    pub fn job_name(&self) -> &str {
        &self.inner.spec.job_name
    }

    /// A client of the pool's scheduler: submit tasks, wait for results.
    pub fn client(&self) -> crate::client::SchedulerClient {
        crate::client::SchedulerClient::from_file(&self.inner.scheduler.scheduler_file())
    }

    /// The embedded scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    /// Resolves when a client asks this cluster to close (`drover close`).
    pub async fn close_requested(&self) {
        self.inner.close_requested.notified().await
    }

    /// Closes the cluster: workers retire (their jobs end COMPLETED),
    /// pending and unregistered jobs are cancelled, and whatever remains
    /// after the close timeout is cancelled too. When it returns, no job of
    /// the cluster is left in `squeue`.
    pub async fn close(&self) -> Result<(), ClusterError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.task.abort();
        if let Some(s) = &self.signals {
            s.abort();
        }
        let left = close_jobs(&self.inner).await;
        if let Some(dask) = &self.inner.dask {
            if let Some(mut p) = dask.process.lock().await.take() {
                p.stop().await;
            }
        }
        if let Some(mut reaper) = self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        self.inner.scheduler.stop();
        let _ = std::fs::remove_file(&self.inner.scheduler_file);
        match left {
            0 => Ok(()),
            n => Err(ClusterError::Slurm(SlurmError::Unexpected {
                command: "scancel".into(),
                output: format!("{n} jobs of the cluster were still listed after cancelling"),
            })),
        }
    }
}

/// Retires, cancels and waits; returns how many jobs are still active.
async fn close_jobs(inner: &Inner) -> usize {
    inner.state().closing = true;
    inner.state().target_jobs = 0;
    let retiring = inner.scheduler.retire_all("the cluster is closing");
    tracing::info!(
        workers = retiring,
        "closing: retiring workers, cancelling the rest"
    );
    let deadline = tokio::time::Instant::now() + inner.options.close_timeout;
    let mut cancelled_unregistered = false;
    let mut cancelled_all = false;
    loop {
        inner.reconcile().await;
        let (active, unregistered): (Vec<JobRef>, Vec<JobRef>) = {
            let st = inner.state();
            let active = st.active_jobs();
            let unregistered = st
                .jobs
                .values()
                // Jobs no worker of which is registered or on its way out
                // (retiring, draining, exited): pending, starting, or lost.
                .filter(|r| {
                    r.state.is_active() && r.workers.iter().all(|w| w.state == WorkerState::Lost)
                })
                .map(|r| r.job)
                .collect();
            (active, unregistered)
        };
        if active.is_empty() {
            return 0;
        }
        if !cancelled_unregistered && !unregistered.is_empty() {
            let _ = inner.slurm.cancel(&unregistered).await;
            cancelled_unregistered = true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline && !cancelled_all {
            tracing::warn!(
                jobs = active.len(),
                "workers did not leave in time: cancelling their jobs"
            );
            let _ = inner.slurm.cancel(&active).await;
            cancelled_all = true;
        }
        if now >= deadline + Duration::from_secs(10) {
            return active.len();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Spawns `drover reaper`, in its own process group so a terminal's
/// Ctrl-C does not reach it: it cancels every job of the cluster once this
/// process is gone.
fn spawn_reaper(inner: &Inner) -> Result<std::process::Child, ClusterError> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&inner.spec.drover_bin);
    cmd.args([
        "reaper",
        "--pid",
        &std::process::id().to_string(),
        "--job-name",
    ])
    .arg(&inner.spec.job_name)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .process_group(0);
    if let Some(conf) = &inner.options.slurm_conf {
        cmd.env("SLURM_CONF", conf);
    }
    cmd.spawn().map_err(|cause| ClusterError::Io {
        what: format!(
            "starting the orphan watcher `{} reaper`",
            inner.spec.drover_bin.display()
        ),
        cause,
    })
}

/// The job that runs `target`: a worker's name or id (`w3`), or a job id.
pub fn find_job<'a>(status: &'a ClusterStatus, target: &str) -> Option<&'a JobStatus> {
    status.jobs.iter().find(|j| {
        j.job == target
            || j.job_id.map(|i| i.to_string()).as_deref() == Some(target)
            || j.workers.iter().any(|w| {
                w.name == target || w.id.to_string() == target || w.id.0.to_string() == target
            })
    })
}

/// The jobs by state, with pending reasons: "3 RUNNING, 5 PENDING (Resources)".
pub fn summarize(status: &ClusterStatus) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for j in &status.jobs {
        if j.state == "COMPLETED" && j.action.is_some() {
            continue;
        }
        let key = match &j.reason {
            Some(r) if j.state == "PENDING" => format!("PENDING ({r})"),
            _ => j.state.clone(),
        };
        *counts.entry(key).or_default() += 1;
    }
    if counts.is_empty() {
        return "no jobs".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(s) = &self.signals {
            s.abort();
        }
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Not closed: cancel every job of the cluster before going.
        let mut cmd = std::process::Command::new("scancel");
        cmd.args(["--name", &self.inner.spec.job_name]);
        if let Some(conf) = &self.inner.options.slurm_conf {
            cmd.env("SLURM_CONF", conf);
        }
        let _ = cmd.output();
        if let Some(mut reaper) = self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        let _ = std::fs::remove_file(&self.inner.scheduler_file);
    }
}
