//! `SlurmCluster`: the handle a driver holds. Starting a pool (its
//! scheduler, reconcile loop and orphan watcher), scaling and adapting it,
//! waiting for its workers, reading its status and logs, and closing it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::books::Books;
use super::close;
use super::dask_pool::DaskPool;
use super::pool::{self, Pool};
use super::{ClusterError, ClusterOptions};
use crate::config::{Directive, JobSpec, Memory, WorkerKind};
use crate::journal::PoolMode;
use crate::protocol::{ClusterStatus, DaskEndpoint, JobStatus};
use crate::scheduler::Scheduler;
use crate::slurm::Slurm;

/// A pool of workers on Slurm.
pub struct SlurmCluster {
    pool: Arc<Pool>,
    task: JoinHandle<()>,
    signals: Option<JoinHandle<()>>,
    reaper: Mutex<Option<std::process::Child>>,
    closed: AtomicBool,
}

/// How often `wait_for_workers` asks the Dask scheduler while only Dask
/// registrations are missing (Dask does not say when they come).
const DASK_WAIT_POLL: Duration = Duration::from_millis(100);

impl SlurmCluster {
    /// Starts a cluster: its scheduler, its reconcile loop, and (unless
    /// disabled) the watcher that cancels its jobs if this process dies.
    /// It starts with no workers; call `scale` or `adapt`.
    pub async fn new(
        spec: JobSpec,
        options: ClusterOptions,
        slurm: impl Slurm + 'static,
    ) -> Result<SlurmCluster, ClusterError> {
        let pool = Arc::new(start_pool(spec, options, Arc::new(slurm)).await?);
        tracing::info!(
            cluster = %pool.scheduler.cluster_id(),
            scheduler = %pool.scheduler.url(),
            file = %pool.scheduler_file.display(),
            "cluster started"
        );
        let reaper = match pool.options.reaper {
            true => Some(close::spawn_reaper(&pool)?),
            false => None,
        };
        let weak = Arc::downgrade(&pool);
        pool.scheduler
            .set_cluster_status_source(Arc::new(move || weak.upgrade().map(|p| p.status())));
        let control = pool.scheduler.attach_control(pool.spec.processes);
        let per_worker = pool.spec.cores / pool.spec.processes.max(1);
        pool.scheduler.set_max_task_cores(per_worker.max(1));
        let memory_per_worker = pool
            .spec
            .memory
            .bytes()
            .div_ceil(u64::from(pool.spec.processes.max(1)));
        pool.scheduler.set_max_task_memory(memory_per_worker.max(1));
        let shape = super::shape::worker_shape(&pool.spec, None);
        pool.scheduler.set_worker_shapes(vec![shape]);
        if let Some(mode) = pool.scheduler.pool_mode() {
            tracing::info!(
                ?mode,
                "continuing from the journal: the pool holds its size"
            );
            pool.set_mode(mode);
        }
        let task = tokio::spawn(pool::run(pool.clone(), control));
        let cluster = SlurmCluster {
            signals: None,
            task,
            reaper: Mutex::new(reaper),
            closed: AtomicBool::new(false),
            pool,
        };
        Ok(cluster.watch_signals())
    }

    fn watch_signals(mut self) -> Self {
        if !self.pool.options.handle_signals {
            return self;
        }
        let pool = self.pool.clone();
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
            close::close_jobs(&pool).await;
            pool.scheduler.record_closed().await;
            std::process::exit(code);
        }));
        self
    }

    /// Asks for `n` workers (`n / processes` jobs, rounded up); stops adapting.
    pub fn scale(&self, n: usize) {
        self.scale_jobs(n.div_ceil(self.pool.spec.processes as usize));
    }

    /// Asks for `k` jobs; stops adapting.
    pub fn scale_jobs(&self, k: usize) {
        tracing::info!(jobs = k, "scaling");
        self.pool.set_mode(PoolMode::Fixed { jobs: k });
    }

    /// Asks for enough jobs to hold `cores` cores.
    pub fn scale_cores(&self, cores: u32) {
        self.scale_jobs(cores.div_ceil(self.pool.spec.cores) as usize);
    }

    /// Asks for enough jobs to hold `memory`.
    pub fn scale_memory(&self, memory: Memory) {
        let jobs = memory.bytes().div_ceil(self.pool.spec.memory.bytes());
        self.scale_jobs(usize::try_from(jobs).unwrap_or(usize::MAX));
    }

    /// Sizes the pool to its work from now on: between `min` and `max`
    /// workers, growing with the cores that ready and running tasks ask
    /// for (for Dask pools: with Dask's own adaptive target), shrinking as
    /// workers stay idle past the idle timeout (for Dask workers: no task
    /// executing or ready on them, as Dask reports). See `adapt.rs`.
    pub fn adapt(&self, min: usize, max: usize) {
        self.adapt_with(min, max, self.pool.options.idle_timeout);
    }

    /// Like `adapt`, retiring workers once idle for `idle_timeout`.
    pub fn adapt_with(&self, min: usize, max: usize, idle_timeout: Duration) {
        let p = self.pool.spec.processes as usize;
        tracing::info!(min, max, "adapting");
        self.pool.set_mode(PoolMode::Adapt {
            min_jobs: min.div_ceil(p),
            max_jobs: max.max(min).div_ceil(p),
            idle_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Stops adapting; the pool keeps the size it has now.
    pub fn stop_adapt(&self) {
        if self.pool.adapt.lock().is_some() {
            tracing::info!("adapting stopped");
            let jobs = self.pool.books().target_jobs;
            self.pool.set_mode(PoolMode::Fixed { jobs });
        }
    }

    /// Workers the pool holds at the least now: its size, or its adaptive
    /// minimum.
    pub fn workers_wanted(&self) -> usize {
        let jobs = match self.pool.adapt.lock().as_ref() {
            Some(a) => a.min_jobs,
            None => self.pool.books().target_jobs,
        };
        jobs.saturating_mul(self.pool.spec.processes as usize)
    }

    /// Whether this pool continues one from its journal (its size, jobs
    /// and workers came back with it).
    pub fn restored(&self) -> bool {
        self.pool.scheduler.restored()
    }

    /// Waits until `n` workers have registered. Fails early, with the
    /// job's state, exit code and log tail, when a job fails before its
    /// worker registers, or when submitting has stopped; at the timeout it
    /// says where the jobs are (PENDING with their reasons...).
    pub async fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<(), ClusterError> {
        let start = tokio::time::Instant::now();
        let failures_before = self.pool.books().failures_seen;
        let mut rounds = self.pool.rounds.subscribe();
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Err(ClusterError::Closed);
            }
            if self.registered(n).await {
                return Ok(());
            }
            self.failed_since(failures_before)?;
            let left = timeout.saturating_sub(start.elapsed());
            // drover's workers are all in: only Dask's registrations are
            // awaited, and Dask does not say when they come; ask it often.
            let dask_pending = self.pool.dask.is_some() && self.pool.scheduler.live_workers() >= n;
            let woke = tokio::select! {
                r = rounds.changed() => r.is_ok(),
                _ = self.pool.scheduler.changed() => true,
                _ = tokio::time::sleep(DASK_WAIT_POLL), if dask_pending => true,
                _ = tokio::time::sleep(left) => false,
            };
            if !woke {
                return Err(ClusterError::WaitTimeout {
                    wanted: n,
                    registered: match &self.pool.dask {
                        Some(dask) => dask.seen().unwrap_or(0),
                        None => self.pool.scheduler.live_workers(),
                    },
                    waited: timeout,
                    jobs: self.status().job_summary(),
                });
            }
        }
    }

    /// Whether `n` workers are registered; for Dask pools, with Dask.
    async fn registered(&self, n: usize) -> bool {
        if self.pool.scheduler.live_workers() < n {
            return false;
        }
        match &self.pool.dask {
            None => true,
            Some(dask) => dask.refresh().await.unwrap_or(0) >= n,
        }
    }

    /// The error to stop waiting with, if submitting stopped or a job
    /// failed since the wait began.
    fn failed_since(&self, failures_before: u64) -> Result<(), ClusterError> {
        let books = self.pool.books();
        if let Some(stopped) = &books.stopped {
            return Err(ClusterError::Stopped(stopped.clone()));
        }
        if books.failures_seen > failures_before {
            if let Some(f) = books.failures.back() {
                return Err(ClusterError::StartupFailed(f.clone()));
            }
        }
        Ok(())
    }

    /// Resolves after the reconcile loop has finished `n` more rounds.
    pub async fn rounds(&self, n: u64) {
        let mut rx = self.pool.rounds.subscribe();
        let until = *rx.borrow_and_update() + n;
        while *rx.borrow_and_update() < until {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The cluster's status: target, every job with its state, pending
    /// reason, node, workers and log, and what went wrong.
    pub fn status(&self) -> ClusterStatus {
        self.pool.status()
    }

    /// Every job of the cluster, with its workers (see `status`).
    pub fn workers(&self) -> Vec<JobStatus> {
        self.pool.status().jobs
    }

    /// The stdout and stderr logs of the job that runs `worker` (a worker
    /// name or id, or a job id).
    pub fn logs(&self, worker: &str) -> Result<String, ClusterError> {
        let status = self.pool.status();
        let job = status
            .job_for(worker)
            .ok_or_else(|| ClusterError::NoSuchJob(worker.to_string()))?;
        let (out, err) = self.pool.log_paths(job.job);
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
        &self.pool.script
    }

    /// The scheduler file workers and tools read.
    pub fn scheduler_file(&self) -> &Path {
        &self.pool.scheduler_file
    }

    /// The scheduler's address.
    pub fn address(&self) -> String {
        self.pool.scheduler.url()
    }

    /// The cluster's id, carried by every one of its jobs.
    pub fn cluster_id(&self) -> String {
        self.pool.scheduler.cluster_id().to_string()
    }

    /// The Dask scheduler of a `dask` pool.
    pub fn dask(&self) -> Option<DaskEndpoint> {
        self.pool.dask.as_ref().map(|d| d.endpoint.clone())
    }

    /// What every job of the cluster is (its name carries the cluster id).
    pub fn spec(&self) -> &JobSpec {
        &self.pool.spec
    }

    /// The Slurm job name of every job of the cluster.
    pub fn job_name(&self) -> &str {
        &self.pool.spec.job_name
    }

    /// A client of the pool's scheduler: submit tasks, wait for results.
    pub fn client(&self) -> crate::client::SchedulerClient {
        crate::client::SchedulerClient::from_file(&self.pool.scheduler.scheduler_file())
    }

    /// The embedded scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.pool.scheduler
    }

    /// Resolves when a client asks this cluster to close (`drover close`).
    pub async fn close_requested(&self) {
        self.pool.close_requested.notified().await
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
        let result = close::close(&self.pool).await;
        self.stop_reaper();
        result
    }

    /// Leaves the pool to a successor on the same journal: the loop and
    /// the scheduler stop (its journal closed and unlocked), and nothing is
    /// closed: jobs, workers and tasks carry on under the successor.
    pub fn hand_over(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.task.abort();
        if let Some(s) = &self.signals {
            s.abort();
        }
        self.stop_reaper();
        self.pool.scheduler.stop();
        tracing::info!("handed over: the pool continues under its next scheduler");
    }

    /// How long before a worker leaves for its time limit its replacement
    /// is submitted (on top of the last start-up time).
    pub fn replace_lead(&self) -> Duration {
        self.pool.options.replace_lead
    }

    fn stop_reaper(&self) {
        if let Some(mut reaper) = self.reaper.lock().take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }
}

/// Starts what a pool is made of: its scheduler, the names its jobs carry,
/// its Dask side, its script and its books.
async fn start_pool(
    mut spec: JobSpec,
    mut options: ClusterOptions,
    slurm: Arc<dyn Slurm>,
) -> Result<Pool, ClusterError> {
    if let Some(journal) = &options.journal {
        if spec.kind == WorkerKind::Dask {
            return Err(crate::config::SpecError::invalid(
                "journal",
                crate::config::ValueError::new(
                    &journal.display().to_string(),
                    "a Dask pool's tasks live in Dask's own scheduler, which a journal cannot bring back",
                    "a journal only for native pools (kind = \"native\")",
                ),
            )
            .into());
        }
        options.scheduler.journal = Some(journal.clone());
        // Workers wait for a scheduler as long as their jobs are kept for
        // one to come back.
        let grace = crate::config::Timeout::new(options.reattach_grace);
        spec.death_timeout = spec.death_timeout.max(grace);
    }
    // What Slurm says of its scheduler is asked while the scheduler starts.
    let (slurm_config, scheduler) = tokio::join!(slurm.scheduler_config(), async {
        options.scheduler.bind = super::network::resolve(
            &options.scheduler.bind,
            slurm.as_ref(),
            spec.queue.as_deref(),
        )
        .await;
        Scheduler::start(options.scheduler.clone()).await
    });
    let scheduler = scheduler?;
    let slurm_config = slurm_config.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read Slurm's scheduler settings; pacing by Slurm's defaults");
        Default::default()
    });
    tracing::debug!(?slurm_config, "Slurm's scheduler settings");
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
        WorkerKind::Dask => Some(DaskPool::start(&spec, &options, &scheduler).await?),
    };
    scheduler.write_scheduler_file(&scheduler_file)?;
    let script = crate::script::render(&spec)?;
    let mut books = Books::new(
        options.max_startup_failures,
        options.retry_backoff,
        options.poll_interval * 2 + Duration::from_secs(5),
    );
    books.replace_lead = options.replace_lead;
    books.limits = options.limits;
    Ok(Pool {
        books: parking_lot::Mutex::new(books),
        spec,
        script,
        slurm,
        scheduler,
        scheduler_file,
        options,
        wake: Notify::new(),
        rounds: watch::channel(0).0,
        close_requested: Notify::new(),
        arrays_refused: AtomicBool::new(false),
        adapt: parking_lot::Mutex::new(None),
        dask,
        pacer: parking_lot::Mutex::new(super::pace::Pacer::new(slurm_config)),
    })
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
        close::cancel_named_blocking(&self.pool.slurm, &self.pool.spec.job_name);
        self.stop_reaper();
        self.pool.scheduler.stop();
        let _ = std::fs::remove_file(&self.pool.scheduler_file);
    }
}
