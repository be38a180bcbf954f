//! Bringing a pool up from the command line, shared by `drover cluster up`
//! and `drover run`: the flags, layered over `[pool]` in the config files
//! and the `DROVER_*` environment; the cluster; and the wait with progress.

use clap::builder::TypedValueParser as _;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use drover::cluster::{ClusterOptions, SlurmCluster};
use drover::config::{AdaptRange, ConfigSources, JobOptions, PoolOptions, Timeout, WorkerKind};
use drover::protocol::ClusterStatus;
use drover::scheduler::Bind;

use super::error::{CliError, Context};

#[derive(Debug, Clone, clap::Args)]
pub struct PoolArgs {
    #[command(flatten)]
    pub job: JobOptions,

    #[command(flatten)]
    pub slurm: super::slurm_args::SlurmArgs,

    /// Workers to start (default 1, or `workers` in [pool]).
    #[arg(long, value_name = "N", help_heading = "Pool",
          value_parser = clap::value_parser!(u32).range(0..=drover::cluster::MAX_JOBS as i64).map(|n| n as usize))]
    pub workers: Option<usize>,

    /// Interface the scheduler listens on: this machine's side of the network the
    /// workers reach it by (default: --interface).
    #[arg(long, value_name = "IFACE", help_heading = "Pool")]
    pub scheduler_interface: Option<String>,

    /// Address the scheduler listens on, instead of an interface's.
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with = "scheduler_interface",
        help_heading = "Pool"
    )]
    pub scheduler_host: Option<IpAddr>,

    /// How long to wait for the workers to register (default 5m).
    #[arg(long, value_name = "TIME", help_heading = "Pool")]
    pub wait_timeout: Option<Timeout>,

    /// Submit workers one job at a time instead of as job arrays.
    #[arg(long, help_heading = "Pool")]
    pub no_arrays: bool,

    /// Size the pool to its tasks, between MIN and MAX workers (instead of --workers).
    #[arg(
        long,
        value_name = "MIN:MAX",
        conflicts_with = "workers",
        help_heading = "Pool"
    )]
    pub adapt: Option<AdaptRange>,

    /// With --adapt: retire workers idle this long, e.g. 30s or 5m (default 60s).
    #[arg(long, value_name = "TIME", help_heading = "Pool")]
    pub idle_timeout: Option<Timeout>,

    /// Site limit: at most N of the pool's jobs pending in Slurm at once.
    #[arg(long, value_name = "N", help_heading = "Pool")]
    pub max_pending_jobs: Option<usize>,

    /// Site limit: at most N jobs submitted in any minute.
    #[arg(long, value_name = "N", help_heading = "Pool")]
    pub max_submit_rate: Option<usize>,

    /// Submit a replacement this long before a worker leaves for its time limit,
    /// on top of the last observed start-up time (default 30s).
    #[arg(long, value_name = "TIME", help_heading = "Pool")]
    pub replace_lead: Option<Timeout>,

    /// With --kind dask: attach to this running Dask scheduler (its scheduler file;
    /// it must serve HTTP) instead of starting one.
    #[arg(long, value_name = "FILE", help_heading = "Pool")]
    pub dask_scheduler_file: Option<PathBuf>,

    /// Make every change of the pool durable in this file first. Started again on
    /// it after a crash, the pool continues: scheduler, tasks and results, workers,
    /// jobs and size.
    #[arg(long, value_name = "PATH", help_heading = "Pool")]
    pub journal: Option<PathBuf>,

    /// With --journal: how long a dead driver's jobs are kept for the pool to come
    /// back on its journal before they are cancelled (default 60s).
    #[arg(long, value_name = "TIME", help_heading = "Pool")]
    pub reattach_grace: Option<Timeout>,
}

/// How long to wait for workers when nothing says.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

impl PoolArgs {
    /// The flags as the top layer of pool options.
    fn flags(&self) -> PoolOptions {
        PoolOptions {
            workers: self.workers,
            adapt: self.adapt,
            wait_timeout: self.wait_timeout,
            arrays: self.no_arrays.then_some(false),
            scheduler_interface: self.scheduler_interface.clone(),
            scheduler_host: self.scheduler_host,
            idle_timeout: self.idle_timeout,
            replace_lead: self.replace_lead,
            max_pending_jobs: self.max_pending_jobs,
            max_submit_rate: self.max_submit_rate,
            dask_scheduler_file: self.dask_scheduler_file.clone(),
            journal: self.journal.clone(),
            reattach_grace: self.reattach_grace,
            ..self.slurm.pool()
        }
    }

    /// The layered settings of the pool and of its jobs.
    pub fn layered(&self, config: Option<PathBuf>) -> Result<PoolSettings, CliError> {
        let sources = ConfigSources::discover(config);
        let mut pool = sources.pool_options(self.flags())?;
        // A size from a flag replaces any size from a file.
        if self.workers.is_some() {
            pool.adapt = None;
        } else if self.adapt.is_some() {
            pool.workers = None;
        }
        let groups = sources.groups()?;
        if !groups.is_empty() && (self.workers.is_some() || self.adapt.is_some()) {
            return Err(CliError::usage(
                "--workers and --adapt size a pool without groups; this pool has [group.NAME] tables: size each with workers = N or adapt = \"MIN:MAX\" there",
            ));
        }
        Ok(PoolSettings {
            job: sources.job_options(self.job.clone())?,
            pool,
            groups,
        })
    }
}

/// A pool's settings, every layer applied (the running pool is
/// `drover::cluster`'s `Pool`).
pub struct PoolSettings {
    /// What each job is (in a pool with groups: what each group's jobs
    /// start from).
    pub job: JobOptions,
    /// How the pool runs.
    pub pool: PoolOptions,
    /// Its groups (`[group.NAME]`), if it has them.
    pub groups: Vec<drover::config::GroupOptions>,
}

impl PoolSettings {
    /// Starts the cluster (not yet scaled).
    pub async fn start(&self) -> Result<SlurmCluster, CliError> {
        self.try_start().await?.context("starting the cluster")
    }

    /// Starts the cluster once its journal is free: a scheduler job's
    /// successor starts while its predecessor still holds the journal, and
    /// takes it when the predecessor hands over (or ends).
    pub async fn start_when_journal_free(&self, limit: Duration) -> Result<SlurmCluster, CliError> {
        use drover::cluster::ClusterError;
        use drover::journal::JournalError;
        use drover::scheduler::SchedulerError;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.try_start().await? {
                Err(ClusterError::Scheduler(SchedulerError::Journal(JournalError::InUse {
                    ..
                }))) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.context("starting the cluster"),
            }
        }
    }

    /// The settings checked (the outer error), then the cluster started
    /// (the inner result, for callers that look at why it did not start).
    async fn try_start(
        &self,
    ) -> Result<Result<SlurmCluster, drover::cluster::ClusterError>, CliError> {
        let spec = self.job.clone().build()?;
        // With nothing named, the pool finds the address that routes to
        // its partition's nodes (see cluster/network.rs).
        let bind = Bind::for_pool(&self.pool, spec.interface.as_deref());
        if self.pool.dask_scheduler_file.is_some() && spec.kind != WorkerKind::Dask {
            return Err(CliError::usage("--dask-scheduler-file needs --kind dask"));
        }
        let mut options = ClusterOptions::new(bind).with(&self.pool)?;
        options.handle_signals = false;
        options.scheduler_file = spec.scheduler_file.clone();
        let slurm = drover::slurm::connect(&self.pool).await?;
        if !self.groups.is_empty() {
            let groups = super::groups::specs(&self.job, &self.groups)?;
            return Ok(SlurmCluster::with_groups(groups, options, slurm).await);
        }
        Ok(SlurmCluster::new(spec, options, slurm).await)
    }

    /// How long to wait for the workers.
    pub fn wait_timeout(&self) -> Duration {
        self.pool
            .wait_timeout
            .map(Timeout::duration)
            .unwrap_or(DEFAULT_WAIT)
    }

    /// Scales (or starts adapting) as the settings say, and waits for the
    /// workers that must be there: `workers` (default 1), or the adaptive
    /// minimum.
    pub async fn bring_up(&self, cluster: &SlurmCluster) -> Result<(), CliError> {
        if cluster.restored() {
            // The journal's size holds, whatever these settings say now.
            let wanted = cluster.workers_wanted();
            tracing::info!(workers = wanted, "continuing the pool from its journal");
            return wait_with_progress(cluster, wanted, self.wait_timeout()).await;
        }
        if !self.groups.is_empty() {
            let wanted = super::groups::size(cluster, &self.groups)?;
            return wait_with_progress(cluster, wanted, self.wait_timeout()).await;
        }
        let wanted = super::groups::apply_size(cluster, None, self.pool.adapt, self.pool.workers)?;
        wait_with_progress(cluster, wanted, self.wait_timeout()).await
    }
}

/// One line about where the pool is.
pub fn progress_line(s: &ClusterStatus, wanted: usize) -> String {
    let dask = match &s.dask {
        Some(d) => format!(" ({} with Dask)", d.workers.unwrap_or(0)),
        None => String::new(),
    };
    format!(
        "{} of {wanted} workers registered{dask}; jobs: {}",
        s.registered,
        s.job_summary()
    )
}

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Waits for `n` workers, showing progress: a live line on a terminal, a
/// log line per change otherwise. On failure the cluster is closed before
/// the error is returned.
pub async fn wait_with_progress(
    cluster: &SlurmCluster,
    n: usize,
    timeout: Duration,
) -> Result<(), CliError> {
    let show = async {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let mut last = String::new();
        loop {
            let line = progress_line(&cluster.status(), n);
            if line != last {
                match &bar {
                    Some(b) => b.set_message(line.clone()),
                    None => tracing::info!("{line}"),
                }
                last = line;
            }
            tokio::time::sleep(PROGRESS_EVERY).await;
        }
    };
    let result = tokio::select! {
        r = cluster.wait_for_workers(n, timeout) => r,
        _ = show => unreachable!("the progress display never ends"),
    };
    match result {
        Ok(()) => {
            eprintln!("{}", progress_line(&cluster.status(), n));
            Ok(())
        }
        Err(e) => {
            let _ = cluster.close().await;
            Err(e).context("waiting for the workers")
        }
    }
}
