//! `ClusterOptions`: how a pool runs. Plain defaults from `new`; the layered
//! `[pool]` settings (config files, `DROVER_*` environment, flags) applied
//! by `with`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{duration_at_least, PoolOptions, SpecError, ValueError};
use crate::scheduler::{Bind, SchedulerConfig};

/// Site limits on how a cluster submits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// At most this many of the cluster's jobs pending in Slurm at once.
    pub max_pending_jobs: Option<usize>,
    /// At most this many jobs submitted in any minute.
    pub max_submit_per_minute: Option<usize>,
}

/// How a cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The embedded scheduler: where it listens (an interface the compute
    /// nodes reach, such as the driver side of `ib0`, or an address) and
    /// how often its workers heartbeat.
    pub scheduler: SchedulerConfig,
    /// Where to write the scheduler file (default: in the log directory).
    pub scheduler_file: Option<PathBuf>,
    /// How often to ask Slurm about the cluster's jobs.
    pub poll_interval: Duration,
    /// How often to ask while a submitted chunk waits for Slurm's
    /// scheduling pass and more jobs wait to be submitted (see `pace`).
    pub pass_poll_interval: Duration,
    /// Consecutive start-up failures after which submitting stops.
    pub max_startup_failures: u32,
    /// What to do with a job Slurm holds after a failed launch.
    pub held_jobs: crate::config::HeldJobs,
    /// In a pool with groups: a group whose jobs were preempted more often
    /// than this within the last hour is passed over as a stalled one is.
    pub preemptions_tolerated: u32,
    /// After a job ended OUT_OF_MEMORY, the pool's next jobs ask for this
    /// factor more memory, up to what the partition takes (`job_growth`).
    pub job_memory_growth: crate::config::MemoryGrowth,
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
    /// The `slurm.conf` for the watcher process.
    pub slurm_conf: Option<PathBuf>,
    /// With `adapt`: how long a worker must be idle before it is retired.
    pub idle_timeout: Duration,
    /// With `adapt`: how long to wait before reversing the direction of scaling.
    pub cooldown: Duration,
    /// In a pool with groups: how long a group's jobs pend before its
    /// ready tasks count for a later group that could run them.
    pub spill_after: Duration,
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
    /// How often the pool reads its jobs' allocations from Slurm's
    /// accounting (`sacct`, one call), for what it cost.
    pub accounting_interval: Duration,
    /// For `dask` pools: the Dask scheduler's port, dashboard and extra
    /// arguments.
    pub dask_scheduler: crate::dask::DaskSchedulerOptions,
    /// Where the pool makes every change durable first; a pool started on
    /// an existing journal continues it (see `journal` in ARCHITECTURE.md).
    pub journal: Option<PathBuf>,
    /// With a journal: how long the orphan watcher keeps a dead driver's
    /// jobs for a pool to come back on the journal, and the least time its
    /// workers wait for a scheduler.
    pub reattach_grace: Duration,
    /// Ask Slurm at the start (`sbatch --test-only`) whether it would take
    /// each group's job, failing the start with Slurm's words if not. Off,
    /// the question waits for a group's first submission: a cluster made
    /// only to look at its job script (as dask-jobqueue's users do) starts
    /// whatever its partition.
    pub check_jobs: bool,
}

impl ClusterOptions {
    /// The defaults, with the scheduler on `bind`.
    pub fn new(bind: Bind) -> Self {
        ClusterOptions {
            scheduler: SchedulerConfig::new(bind),
            scheduler_file: None,
            poll_interval: Duration::from_secs(2),
            pass_poll_interval: Duration::from_millis(200),
            max_startup_failures: 3,
            held_jobs: crate::config::HeldJobs::Release,
            preemptions_tolerated: 2,
            job_memory_growth: crate::config::MemoryGrowth::default(),
            retry_backoff: Duration::from_secs(2),
            close_timeout: Duration::from_secs(10),
            arrays: true,
            reaper: true,
            handle_signals: true,
            slurm_conf: std::env::var_os("SLURM_CONF").map(PathBuf::from),
            idle_timeout: Duration::from_secs(60),
            cooldown: Duration::from_secs(15),
            spill_after: Duration::from_secs(300),
            replace_lead: Duration::from_secs(30),
            limits: Limits::default(),
            dask_scheduler_file: None,
            dask_start_timeout: Duration::from_secs(60),
            accounting_interval: Duration::from_secs(60),
            dask_scheduler: Default::default(),
            journal: None,
            reattach_grace: Duration::from_secs(60),
            check_jobs: true,
        }
    }

    /// The defaults with the `DROVER_*` environment applied.
    pub fn from_env(bind: Bind) -> Result<Self, SpecError> {
        ClusterOptions::new(bind).with(&crate::config::pool_from_env()?)
    }

    /// These options with every setting `pool` holds applied.
    pub fn with(mut self, pool: &PoolOptions) -> Result<Self, SpecError> {
        let set = |d: &mut Duration, t: Option<crate::config::Timeout>| {
            if let Some(t) = t {
                *d = t.duration();
            }
        };
        set(&mut self.poll_interval, pool.poll_interval);
        set(&mut self.pass_poll_interval, pool.pass_poll_interval);
        set(&mut self.retry_backoff, pool.retry_backoff);
        set(&mut self.close_timeout, pool.close_timeout);
        set(&mut self.idle_timeout, pool.idle_timeout);
        set(&mut self.cooldown, pool.adapt_cooldown);
        set(&mut self.spill_after, pool.spill_after);
        set(&mut self.replace_lead, pool.replace_lead);
        set(&mut self.dask_start_timeout, pool.dask_start_timeout);
        set(&mut self.accounting_interval, pool.accounting_interval);
        set(&mut self.reattach_grace, pool.reattach_grace);
        if pool.journal.is_some() {
            self.journal = pool.journal.clone();
        }
        if let Some(n) = pool.max_startup_failures {
            self.max_startup_failures = at_least_one("max-startup-failures", n as usize)? as u32;
        }
        if let Some(held) = pool.held_jobs {
            self.held_jobs = held;
        }
        if let Some(n) = pool.preemptions_tolerated {
            self.preemptions_tolerated = n;
        }
        if let Some(g) = pool.job_memory_growth {
            self.job_memory_growth = g;
        }
        if let Some(arrays) = pool.arrays {
            self.arrays = arrays;
        }
        self.limits = Limits {
            max_pending_jobs: pool
                .max_pending_jobs
                .map(|n| at_least_one("max-pending-jobs", n))
                .transpose()?
                .or(self.limits.max_pending_jobs),
            max_submit_per_minute: pool
                .max_submit_rate
                .map(|n| at_least_one("max-submit-rate", n))
                .transpose()?
                .or(self.limits.max_submit_per_minute),
        };
        if pool.dask_scheduler_file.is_some() {
            self.dask_scheduler_file = pool.dask_scheduler_file.clone();
        }
        duration_at_least("poll-interval", self.poll_interval, 10)?;
        duration_at_least("pass-poll-interval", self.pass_poll_interval, 10)?;
        self.scheduler = self.scheduler.with(pool)?;
        Ok(self)
    }
}

/// `n`, or an error naming `field` when it is zero.
pub(crate) fn at_least_one(field: &'static str, n: usize) -> Result<usize, SpecError> {
    if n == 0 {
        return Err(SpecError::invalid(
            field,
            ValueError::new(
                "0",
                "it must be at least 1 (or left out for no limit)",
                "a whole number from 1 up",
            ),
        ));
    }
    Ok(n)
}
