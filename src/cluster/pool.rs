//! `Pool`: the state a `SlurmCluster` shares with its reconcile loop, and
//! one round of that loop: look at Slurm and the scheduler, let the books
//! decide, act on the plan, publish.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::adapt::{self, Adaptive, Demand, Round};
use super::books::{Books, Plan};
use super::dask_pool::DaskPool;
use super::sizing::Sizing;
use super::ClusterOptions;
use crate::config::{Ask, JobSpec, PerJob};
use crate::journal::PoolMode;
use crate::protocol::{Demand as Source, StartupFailure, WorkerShape};
use crate::scheduler::{ControlRequest, Scheduler};
use crate::slurm::{JobInfo, JobRef, Slurm, SlurmError};

/// The most jobs a pool asks for: a careless `scale(10**19)` must not
/// become an endless stream of `sbatch`.
pub const MAX_JOBS: usize = 100_000;

/// Everything a pool is, shared by its handle and its loop.
pub(crate) struct Pool {
    /// Its group, in a cluster with groups.
    pub group: Option<String>,
    /// What its jobs are, as configured (their name, logs, sizes).
    pub spec: JobSpec,
    /// The script new jobs are submitted with and one of their workers (as
    /// the scheduler is told): the spec's, until jobs ended OUT_OF_MEMORY
    /// made them grow (`job_growth.rs`).
    pub sizing: Mutex<Sizing>,
    pub slurm: Arc<dyn Slurm>,
    /// The cluster's scheduler, shared by its groups.
    pub scheduler: Arc<Scheduler>,
    pub scheduler_file: PathBuf,
    pub options: ClusterOptions,
    pub books: Mutex<Books>,
    /// Wakes the reconcile loop early (after `scale`); shared by the
    /// groups of a cluster, which have one loop.
    pub wake: Arc<Notify>,
    /// Bumped after every reconcile round.
    /// Shared by the groups of a cluster: a round of any of them counts.
    pub rounds: Arc<watch::Sender<u64>>,
    /// Notified when a client asks the cluster to close.
    pub close_requested: Notify,
    /// Set once the site refused a job array.
    pub arrays_refused: AtomicBool,
    /// Whether the last read of its allocations failed (said once, until
    /// a read succeeds again).
    pub accounting_failing: AtomicBool,
    /// Set once Slurm said it would take the pool's job (or could not
    /// say): the `sbatch --test-only` before the first submission is done.
    pub checked: AtomicBool,
    /// Set while the pool sizes itself to the work.
    pub adapt: Mutex<Option<Adaptive>>,
    /// The Dask side of a `dask` pool.
    pub dask: Option<Arc<DaskPool>>,
}

impl Pool {
    pub fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock()
    }

    /// One worker of the jobs it submits now.
    pub fn shape(&self) -> WorkerShape {
        self.sizing.lock().shape.clone()
    }

    /// The script it submits jobs with now.
    pub fn script(&self) -> String {
        self.sizing.lock().script.clone()
    }

    /// What one of its jobs holds, to turn sizes into jobs.
    pub fn per_job(&self) -> PerJob {
        PerJob::of(&self.spec)
    }

    /// The stdout and stderr logs of `job`, named as Slurm names them:
    /// `NAME-JOBID` for a job, `NAME-ARRAY_TASK` for an array task.
    pub fn log_paths(&self, job: JobRef) -> (PathBuf, PathBuf) {
        let base = format!("{}-{job}", self.spec.job_name);
        let dir = &self.spec.log_directory;
        (
            dir.join(format!("{base}.out")),
            dir.join(format!("{base}.err")),
        )
    }

    /// Whether this round looks at Slurm. A pool that has submitted
    /// nothing has nothing to look at: its first jobs go to Slurm without
    /// waiting for a listing. One that continues from a journal looks
    /// first: its jobs may still run.
    pub fn needs_look(&self) -> bool {
        let books = self.books();
        !(books.jobs().is_empty() && books.target() > 0 && !self.scheduler.restored())
    }

    /// The rest of a round, after the look (`None`: no listing this round).
    pub async fn round_after(&self, listing: Option<Vec<JobInfo>>) {
        if let Some(dask) = &self.dask {
            dask.refresh(&self.scheduler).await;
            if self.adapt.lock().is_some() {
                dask.refresh_adaptive(&self.scheduler).await;
            }
        }
        let workers = self.scheduler.workers();
        if listing.is_some() {
            if self.group.is_some() {
                let stalled = self.stalled();
                self.scheduler.set_stalled(self.group.as_deref(), stalled);
            }
            self.adapt_target();
        }
        let plan = self
            .books()
            .reconcile(listing.as_deref(), &workers, Instant::now());
        self.grow_after_out_of_memory().await;
        self.act(plan).await;
        self.rounds.send_modify(|n| *n += 1);
    }

    /// Whether this group is passed over for now: its oldest pending job
    /// has waited `spill-after`, or its jobs were preempted more than
    /// `preemptions-tolerated` times within the hour.
    fn stalled(&self) -> bool {
        let books = self.books();
        let pending_long = books
            .pending_since()
            .is_some_and(|since| since.elapsed() >= self.options.spill_after);
        let recent = books.recent_preemptions(Instant::now());
        let preempted = recent > self.options.preemptions_tolerated as usize;
        if preempted && !pending_long {
            tracing::debug!(
                group = self.group.as_deref().unwrap_or_default(),
                recent,
                "jobs preempted too often: the group's work counts for the next group"
            );
        }
        pending_long || preempted
    }

    /// Takes what Slurm answered about this pool's jobs into the books:
    /// the listing, or `None` when Slurm did not answer (or failed).
    pub fn take_listing(&self, listed: Result<Vec<JobInfo>, &SlurmError>) -> Option<Vec<JobInfo>> {
        match listed {
            Ok(ours) => {
                self.books().slurm_answered();
                Some(ours)
            }
            Err(e) if e.is_unreachable() => {
                self.books().slurm_unreachable(e);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the cluster's jobs");
                self.books().note_error(e);
                None
            }
        }
    }

    async fn act(&self, mut plan: Plan) {
        for job in &plan.failed {
            let failure = self.failure_of(*job);
            tracing::warn!("{failure}");
            self.books().record_failure(failure);
        }
        if !plan.release.is_empty() {
            match self.slurm.release(&plan.release).await {
                Ok(true) => {}
                // This backend cannot release: replaced instead (next round).
                Ok(false) => {
                    tracing::info!("Slurm's backend here cannot release held jobs: cancelling them for replacements");
                    self.books().release_refused(&plan.release, Instant::now());
                    plan.cancel.append(&mut plan.release);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "release failed");
                    let mut books = self.books();
                    match e.is_unreachable() {
                        true => books.slurm_unreachable(&e),
                        false => books.note_error(&e),
                    }
                }
            }
        }
        if !plan.cancel.is_empty() {
            tracing::info!(jobs = ?plan.cancel.iter().map(ToString::to_string).collect::<Vec<_>>(), "cancelling");
            if let Err(e) = self.slurm.cancel(&plan.cancel).await {
                tracing::warn!(error = %e, "cancel failed");
                let mut books = self.books();
                match e.is_unreachable() {
                    true => books.slurm_unreachable(&e),
                    false => books.note_error(&e),
                }
            }
        }
        for id in &plan.retire {
            self.scheduler.retire(*id, "the pool is scaling down");
        }
        if plan.submit > 0 {
            let now = Instant::now();
            let jobs = self.submit(plan.submit).await;
            self.books().chunk_submitted(jobs, now);
        }
    }

    fn failure_of(&self, job: JobRef) -> StartupFailure {
        let (state, exit_code) = {
            let books = self.books();
            let r = &books.jobs()[&job];
            (r.state.clone(), r.exit_code)
        };
        let (out, err) = self.log_paths(job);
        StartupFailure::JobEnded {
            job,
            state,
            exit_code,
            log_tail: [out, err]
                .iter()
                .filter_map(|p| {
                    crate::private_fs::read::tail_lines(p, 20)
                        .map(|t| format!("==> {} <==\n{t}", p.display()))
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Moves an adaptive pool's target toward the demand (see `adapt`).
    fn adapt_target(&self) {
        let mut guard = self.adapt.lock();
        let Some(a) = guard.as_mut() else { return };
        let demand = self.demand();
        let idle_before = crate::protocol::unix_ms()
            .saturating_sub(u64::try_from(a.idle_timeout.as_millis()).unwrap_or(u64::MAX));
        let mut books = self.books();
        let (removable, idle_running) = books.removable_jobs(idle_before);
        let round = Round {
            current: books.target(),
            demand,
            removable,
            idle_running,
            now: Instant::now(),
            cooldown: self.options.cooldown,
            idle_timeout: a.idle_timeout,
        };
        let decision = adapt::decide(a, &round);
        let kept = adapt::kept_by_cooldown(a, &round, &decision);
        let cooldown_ms = a.count_cooldown(kept, self.per_job().cores, round.now);
        let target = a.apply(decision, round.now);
        books.adapt_target(target);
        drop((books, guard));
        (self.scheduler).set_cooldown_idle(self.group.clone(), cooldown_ms);
    }

    /// What the work asks for: native pools follow what their tasks ask
    /// for (cores, memory, GPUs: see `tasks/demand.rs` for which tasks
    /// count for which group), Dask pools Dask's own adaptive target (in
    /// workers).
    fn demand(&self) -> Demand {
        match &self.dask {
            None => {
                let ask = self.scheduler.task_demand(self.group.as_deref());
                let workers = ask.workers(&self.shape());
                Demand {
                    jobs: Some(self.per_job().jobs_for(Ask::Workers(workers))),
                    source: Source::Tasks {
                        cores: ask.cores,
                        memory: ask.memory,
                        gpus: ask.gpus,
                    },
                }
            }
            Some(dask) => match dask.desired() {
                Some(n) => Demand {
                    jobs: Some(self.per_job().jobs_for_workers(n)),
                    source: Source::Dask { workers: n },
                },
                None => Demand {
                    jobs: None,
                    source: Source::DaskUnknown,
                },
            },
        }
    }

    /// Sizes the pool (recorded in the journal, when there is one) and
    /// wakes the loop to act on it.
    pub fn set_mode(&self, mode: PoolMode) {
        self.scheduler.set_pool_mode(self.group.as_deref(), mode);
        match mode {
            PoolMode::Fixed { jobs } => {
                *self.adapt.lock() = None;
                self.set_target(jobs);
            }
            PoolMode::Adapt {
                min_jobs,
                max_jobs,
                idle_ms,
            } => {
                let idle = std::time::Duration::from_millis(idle_ms);
                let counted = self.scheduler.cooldown_idle(self.group.as_deref());
                let adaptive = Adaptive::new(min_jobs, max_jobs, idle).counted_from(counted);
                *self.adapt.lock() = Some(adaptive);
                self.set_target(min_jobs);
            }
        }
    }

    /// Sets the target in jobs, and wakes the loop to act on it.
    pub fn set_target(&self, jobs: usize) {
        if jobs > MAX_JOBS {
            tracing::warn!(
                asked = jobs,
                max = MAX_JOBS,
                "a pool holds at most {MAX_JOBS} jobs"
            );
        }
        self.books().set_target(jobs.min(MAX_JOBS), Instant::now());
        self.wake.notify_one();
    }

    /// How long the loop may wait before this pool's next round: soon
    /// while a chunk waits for Slurm's pass.
    pub fn next_round_in(&self) -> std::time::Duration {
        let books = self.books();
        if let Some(pause) = books.closing_pause(Instant::now()) {
            return pause;
        }
        match books.pacing() {
            true => self
                .options
                .pass_poll_interval
                .min(self.options.poll_interval),
            false => self.options.poll_interval,
        }
    }

    /// What a client asked for through the scheduler.
    pub fn control(&self, request: ControlRequest) {
        match request {
            ControlRequest::Scale(n) => {
                let jobs = self.per_job().jobs_for_workers(n);
                tracing::info!(workers = n, jobs, "scale requested through the scheduler");
                self.set_mode(PoolMode::Fixed { jobs });
            }
            ControlRequest::Adapt { min, max, idle } => {
                let (min_jobs, max_jobs) = self.per_job().job_range(min, max);
                let idle = idle.unwrap_or(self.options.idle_timeout);
                tracing::info!(min, max, "adapting, as asked through the scheduler");
                self.set_mode(PoolMode::Adapt {
                    min_jobs,
                    max_jobs,
                    idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                });
            }
            ControlRequest::CancelJob(job) => {
                let asked = self.books().cancel_asked(job, Instant::now());
                tracing::info!(%job, asked, "cancelling a job, as asked through the scheduler");
                self.wake.notify_one();
            }
            ControlRequest::Close => {
                tracing::info!("close requested through the scheduler");
                // A permit, not a wake-up of current waiters: a request
                // that comes before anyone waits is still seen.
                self.close_requested.notify_one();
            }
        }
    }
}
