//! `SlurmCluster`: the handle a driver holds. Starting a pool (its
//! scheduler, reconcile loop and orphan watcher), scaling and adapting it,
//! waiting for its workers, reading its status and logs, and closing it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::close;
use super::pool::Pool;
use super::start::{self, Group};
use super::{ClusterError, ClusterOptions};
use crate::config::{Ask, JobSpec, Memory};
use crate::journal::PoolMode;
use crate::protocol::{ClusterStatus, DaskEndpoint, JobStatus, WorkerShape};
use crate::scheduler::Scheduler;
use crate::slurm::Slurm;

/// A pool of workers on Slurm.
pub struct SlurmCluster {
    /// One pool per group (one for a cluster without groups), sharing one
    /// scheduler.
    pools: Vec<Arc<Pool>>,
    /// Their reconcile loop (one for all groups).
    tasks: Vec<JoinHandle<()>>,
    signals: Option<JoinHandle<()>>,
    reapers: Mutex<Vec<std::process::Child>>,
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
        Self::launch(vec![(None, spec)], options, Arc::new(slurm)).await
    }

    /// Starts a cluster with groups: one scheduler, and for each group its
    /// own jobs, sized on its own (`scale_group`, `adapt_group`). Tasks
    /// that ask for a group, GPUs or more than some group's workers have
    /// run only where they fit (see `tasks/demand.rs` for how adaptive
    /// groups share the work).
    pub async fn with_groups(
        groups: Vec<Group>,
        options: ClusterOptions,
        slurm: impl Slurm + 'static,
    ) -> Result<SlurmCluster, ClusterError> {
        let groups = groups.into_iter().map(|g| (Some(g.name), g.spec)).collect();
        Self::launch(groups, options, Arc::new(slurm)).await
    }

    async fn launch(
        groups: Vec<(Option<String>, JobSpec)>,
        options: ClusterOptions,
        slurm: Arc<dyn Slurm>,
    ) -> Result<SlurmCluster, ClusterError> {
        let pools: Vec<Arc<Pool>> = start::start(groups, options, slurm)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        let first = &pools[0];
        tracing::info!(
            cluster = %first.scheduler.cluster_id(),
            scheduler = %first.scheduler.url(),
            file = %first.scheduler_file.display(),
            groups = pools.len(),
            "cluster started"
        );
        let mut reapers = Vec::new();
        if first.options.reaper {
            for pool in &pools {
                reapers.push(close::spawn_reaper(pool)?);
            }
        }
        let weak: Vec<_> = pools.iter().map(Arc::downgrade).collect();
        first.scheduler.set_cluster_status_source(Arc::new(move || {
            let parts: Option<Vec<ClusterStatus>> = weak
                .iter()
                .map(|w| w.upgrade().map(|p| super::status::of(&p)))
                .collect();
            parts.map(super::status::combine)
        }));
        let largest = |f: fn(&WorkerShape) -> u64| pools.iter().map(|p| f(&p.shape())).max();
        let cores = largest(|s| s.cores.into()).unwrap_or(1);
        first
            .scheduler
            .set_max_task_cores(u32::try_from(cores).unwrap_or(u32::MAX));
        first
            .scheduler
            .set_max_task_memory(largest(|s| s.memory_bytes).unwrap_or(1));
        first
            .scheduler
            .set_worker_shapes(pools.iter().map(|p| p.shape()).collect());
        let mut controls = Vec::with_capacity(pools.len());
        for pool in &pools {
            let control = pool
                .scheduler
                .attach_control(pool.group.clone(), pool.per_job());
            if let Some(mode) = pool.scheduler.pool_mode(pool.group.as_deref()) {
                tracing::info!(
                    ?mode,
                    group = pool.group.as_deref().unwrap_or_default(),
                    "continuing from the journal: the pool holds its size"
                );
                pool.set_mode(mode);
            }
            controls.push(control);
        }
        let tasks = vec![tokio::spawn(super::rounds::run(pools.clone(), controls))];
        let cluster = SlurmCluster {
            signals: None,
            tasks,
            reapers: Mutex::new(reapers),
            closed: AtomicBool::new(false),
            pools,
        };
        Ok(cluster.watch_signals())
    }

    /// The pool of a cluster without groups; a cluster with groups: its
    /// first group, which also answers for the cluster as a whole.
    pub(super) fn pool(&self) -> &Arc<Pool> {
        &self.pools[0]
    }

    /// Every pool: one per group.
    pub(super) fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }

    fn watch_signals(mut self) -> Self {
        if !self.pool().options.handle_signals {
            return self;
        }
        let pools = self.pools.clone();
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
            close::close_jobs_all(&pools).await;
            pools[0].scheduler.record_closed().await;
            std::process::exit(code);
        }));
        self
    }

    /// Asks for `n` workers (`n / workers per job` jobs, rounded up); stops
    /// adapting.
    pub fn scale(&self, n: usize) {
        self.scale_jobs(self.pool().per_job().jobs_for_workers(n));
    }

    /// What one job of the pool (of its first group) holds: sizes in
    /// workers, cores or memory become jobs by it.
    pub fn per_job(&self) -> crate::config::PerJob {
        self.pool().per_job()
    }

    /// Asks for `k` jobs; stops adapting.
    pub fn scale_jobs(&self, k: usize) {
        tracing::info!(jobs = k, "scaling");
        self.pool().set_mode(PoolMode::Fixed { jobs: k });
    }

    /// Asks for enough jobs to hold `cores` cores.
    pub fn scale_cores(&self, cores: u32) {
        let jobs = self.pool().per_job().jobs_for(Ask::Cores(cores.into()));
        self.scale_jobs(jobs);
    }

    /// Asks for enough jobs to hold `memory`.
    pub fn scale_memory(&self, memory: Memory) {
        self.scale_jobs(self.pool().per_job().jobs_for(Ask::Memory(memory)));
    }

    /// Sizes the pool to its work from now on: between `min` and `max`
    /// workers, growing with the cores that ready and running tasks ask
    /// for (for Dask pools: with Dask's own adaptive target), shrinking as
    /// workers stay idle past the idle timeout (for Dask workers: no task
    /// executing or ready on them, as Dask reports). See `adapt.rs`.
    pub fn adapt(&self, min: usize, max: usize) {
        self.adapt_with(min, max, self.pool().options.idle_timeout);
    }

    /// Like `adapt`, retiring workers once idle for `idle_timeout`.
    pub fn adapt_with(&self, min: usize, max: usize, idle_timeout: Duration) {
        let (min_jobs, max_jobs) = self.pool().per_job().job_range(min, max);
        tracing::info!(min, max, "adapting");
        self.pool().set_mode(PoolMode::Adapt {
            min_jobs,
            max_jobs,
            idle_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Stops adapting; the pool keeps the size it has now.
    pub fn stop_adapt(&self) {
        if self.pool().adapt.lock().is_some() {
            tracing::info!("adapting stopped");
            let jobs = self.pool().books().target();
            self.pool().set_mode(PoolMode::Fixed { jobs });
        }
    }

    /// Workers the pool holds at the least now: its size, or its adaptive
    /// minimum.
    pub fn workers_wanted(&self) -> usize {
        self.pools
            .iter()
            .map(|pool| {
                let jobs = match pool.adapt.lock().as_ref() {
                    Some(a) => a.min_jobs,
                    None => pool.books().target(),
                };
                jobs.saturating_mul(pool.spec.workers_per_job() as usize)
            })
            .fold(0, usize::saturating_add)
    }

    /// Whether this pool continues one from its journal (its size, jobs
    /// and workers came back with it).
    pub fn restored(&self) -> bool {
        self.pool().scheduler.restored()
    }

    /// Waits until `n` workers have registered. Fails early, with the
    /// job's state, exit code and log tail, when a job fails before its
    /// worker registers, or when submitting has stopped; at the timeout it
    /// says where the jobs are (PENDING with their reasons...).
    pub async fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<(), ClusterError> {
        let start = tokio::time::Instant::now();
        let failures_before: Vec<u64> = self
            .pools
            .iter()
            .map(|p| p.books().failures_seen())
            .collect();
        let mut rounds = self.pool().rounds.subscribe();
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Err(ClusterError::Closed);
            }
            if self.registered(n).await {
                return Ok(());
            }
            self.failed_since(&failures_before)?;
            let left = timeout.saturating_sub(start.elapsed());
            // drover's workers are all in: only Dask's registrations are
            // awaited, and Dask does not say when they come; ask it often.
            let dask_pending =
                self.pool().dask.is_some() && self.pool().scheduler.live_workers() >= n;
            let woke = tokio::select! {
                r = rounds.changed() => r.is_ok(),
                _ = self.pool().scheduler.changed() => true,
                _ = tokio::time::sleep(DASK_WAIT_POLL), if dask_pending => true,
                _ = tokio::time::sleep(left) => false,
            };
            if !woke {
                return Err(ClusterError::WaitTimeout {
                    wanted: n,
                    registered: match &self.pool().dask {
                        Some(dask) => dask.seen().unwrap_or(0),
                        None => self.pool().scheduler.live_workers(),
                    },
                    waited: timeout,
                    jobs: self.status().job_summary(),
                });
            }
        }
    }

    /// Whether `n` workers are registered; for Dask pools, with Dask.
    async fn registered(&self, n: usize) -> bool {
        if self.pool().scheduler.live_workers() < n {
            return false;
        }
        match &self.pool().dask {
            None => true,
            Some(dask) => dask.refresh(&self.pool().scheduler).await.unwrap_or(0) >= n,
        }
    }

    /// The error to stop waiting with, if submitting stopped or a job
    /// failed since the wait began.
    fn failed_since(&self, failures_before: &[u64]) -> Result<(), ClusterError> {
        for (pool, before) in self.pools.iter().zip(failures_before) {
            let books = pool.books();
            if let Some(cause) = books.stopped() {
                return Err(ClusterError::Stopped(cause.clone()));
            }
            if books.failures_seen() > *before {
                if let Some(f) = books.failures().back() {
                    return Err(ClusterError::StartupFailed(f.clone()));
                }
            }
        }
        Ok(())
    }

    /// Resolves after the reconcile loop has finished `n` more rounds.
    pub async fn rounds(&self, n: u64) {
        let mut rx = self.pool().rounds.subscribe();
        let until = *rx.borrow_and_update() + n;
        while *rx.borrow_and_update() < until {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The cluster's status: target, every job with its state, pending
    /// reason, node, workers and log, and what went wrong.
    /// A cluster with groups sums its groups up, and lists each in `groups`.
    pub fn status(&self) -> ClusterStatus {
        super::status::combine(self.pools.iter().map(|p| super::status::of(p)).collect())
    }

    /// Every job of the cluster, with its workers (see `status`).
    pub fn workers(&self) -> Vec<JobStatus> {
        self.status().jobs
    }

    /// The stdout and stderr logs of the job that runs `worker` (a worker
    /// name or id, or a job id).
    pub fn logs(&self, worker: &str) -> Result<String, ClusterError> {
        let status = self.status();
        let job = status
            .job_for(worker)
            .ok_or_else(|| ClusterError::NoSuchJob(worker.to_string()))?;
        let pool = self
            .pools
            .iter()
            .find(|p| p.group == job.group)
            .unwrap_or(self.pool());
        let (out, err) = pool.log_paths(job.job);
        Ok([out, err]
            .iter()
            .map(|p| {
                format!(
                    "==> {} <==\n{}",
                    p.display(),
                    crate::private_fs::read::tail(p).text
                )
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// The job script new worker jobs are submitted with (its memory grown
    /// after jobs ended OUT_OF_MEMORY, see `job-memory-growth`).
    pub fn job_script(&self) -> String {
        self.pool().script()
    }

    /// The scheduler file workers and tools read.
    pub fn scheduler_file(&self) -> &Path {
        &self.pool().scheduler_file
    }

    /// The scheduler's address.
    pub fn address(&self) -> String {
        self.pool().scheduler.url()
    }

    /// The cluster's id, carried by every one of its jobs.
    pub fn cluster_id(&self) -> String {
        self.pool().scheduler.cluster_id().to_string()
    }

    /// The Dask scheduler of a `dask` pool.
    pub fn dask(&self) -> Option<DaskEndpoint> {
        self.pool().dask.as_ref().map(|d| d.endpoint.clone())
    }

    /// What every job of the cluster is (its name carries the cluster id).
    pub fn spec(&self) -> &JobSpec {
        &self.pool().spec
    }

    /// The Slurm job name of every job of the cluster.
    pub fn job_name(&self) -> &str {
        &self.pool().spec.job_name
    }

    /// A client of the pool's scheduler: submit tasks, wait for results.
    pub fn client(&self) -> crate::client::SchedulerClient {
        crate::client::SchedulerClient::from_file(&self.pool().scheduler.scheduler_file())
    }

    /// The embedded scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.pool().scheduler
    }

    /// Resolves when a client asks this cluster to close (`drover close`).
    pub async fn close_requested(&self) {
        self.pool().close_requested.notified().await
    }

    /// What the pool cost and used so far (after `close`: in all).
    pub fn report(&self) -> crate::protocol::Report {
        self.pool().scheduler.report()
    }

    /// Closes the cluster: workers retire (their jobs end COMPLETED),
    /// pending and unregistered jobs are cancelled, and whatever remains
    /// after the close timeout is cancelled too. When it returns, no job of
    /// the cluster is left in `squeue`.
    pub async fn close(&self) -> Result<(), ClusterError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(s) = &self.signals {
            s.abort();
        }
        let result = close::close(&self.pools, || self.stop_loops()).await;
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
        self.stop_loops();
        self.stop_reaper();
        self.pool().scheduler.stop();
        tracing::info!("handed over: the pool continues under its next scheduler");
    }

    /// How long before a worker leaves for its time limit its replacement
    /// is submitted (on top of the last start-up time).
    pub fn replace_lead(&self) -> Duration {
        self.pool().options.replace_lead
    }

    fn stop_reaper(&self) {
        for mut reaper in self.reapers.lock().drain(..) {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }

    fn stop_loops(&self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(s) = &self.signals {
            s.abort();
        }
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        self.stop_loops();
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Not closed: cancel every job of the cluster before going.
        for pool in &self.pools {
            close::cancel_named_blocking(&pool.slurm, &pool.spec.job_name);
        }
        self.stop_reaper();
        self.pool().scheduler.stop();
        let _ = std::fs::remove_file(&self.pool().scheduler_file);
    }
}
