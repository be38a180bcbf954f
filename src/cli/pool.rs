//! Bringing a pool up from the command line, shared by `drover cluster up`
//! and `drover run`: the flags, the cluster, and the wait with progress.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use drover::cluster::{summarize, ClusterOptions, Limits, SlurmCluster};
use drover::config::{ConfigSources, JobOptions, Timeout};
use drover::protocol::ClusterStatus;
use drover::scheduler::Bind;
use drover::slurm::SlurmCli;

#[derive(Debug, Clone, clap::Args)]
pub struct PoolArgs {
    #[command(flatten)]
    pub job: JobOptions,

    /// Workers to start.
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Pool")]
    pub workers: usize,

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

    /// How long to wait for the workers to register.
    #[arg(long, value_name = "TIME", default_value = "5m", help_heading = "Pool")]
    pub wait_timeout: Timeout,

    /// Submit workers one job at a time instead of as job arrays.
    #[arg(long, help_heading = "Pool")]
    pub no_arrays: bool,

    /// Size the pool to its tasks, between MIN and MAX workers (instead of --workers).
    #[arg(long, value_name = "MIN:MAX", value_parser = parse_adapt, conflicts_with = "workers", help_heading = "Pool")]
    pub adapt: Option<(usize, usize)>,

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
}

fn parse_adapt(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected MIN:MAX worker counts with MIN <= MAX, such as 0:8; got `{s}`");
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let (min, max) = (
        a.trim().parse::<usize>().map_err(|_| bad())?,
        b.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if min > max || max == 0 {
        return Err(bad());
    }
    Ok((min, max))
}

impl PoolArgs {
    /// Starts the cluster (not yet scaled).
    pub async fn start(&self, config: Option<PathBuf>) -> anyhow::Result<SlurmCluster> {
        let job = ConfigSources::discover(config).job_options(self.job.clone())?;
        let spec = job.clone().build()?;
        let bind = match (&self.scheduler_host, &self.scheduler_interface, &spec.interface) {
            (Some(h), _, _) => Bind::Host(*h),
            (None, Some(i), _) | (None, None, Some(i)) => Bind::Interface(i.clone()),
            (None, None, None) => anyhow::bail!(
                "where should the scheduler listen? give --scheduler-interface IFACE (this machine's side of \
                 the network the workers reach, e.g. ib0), --scheduler-host ADDR, or --interface"
            ),
        };
        let mut options = ClusterOptions::new(bind)?;
        options.arrays = !self.no_arrays;
        options.handle_signals = false;
        options.scheduler_file = spec.scheduler_file.clone();
        if let Some(t) = self.idle_timeout {
            options.idle_timeout = t.duration();
        }
        if let Some(t) = self.replace_lead {
            options.replace_lead = t.duration();
        }
        if let Some(f) = &self.dask_scheduler_file {
            if spec.kind != drover::config::WorkerKind::Dask {
                return Err(drover::config::SpecError::Conflict(
                    "--dask-scheduler-file needs --kind dask".into(),
                )
                .into());
            }
            options.dask_scheduler_file = Some(f.clone());
        }
        for (flag, value) in [
            ("--max-pending-jobs", self.max_pending_jobs),
            ("--max-submit-rate", self.max_submit_rate),
        ] {
            if value == Some(0) {
                anyhow::bail!("invalid value `0` for {flag}: it must be at least 1 (or left out for no limit)");
            }
        }
        options.limits = Limits {
            max_pending_jobs: self.max_pending_jobs,
            max_submit_per_minute: self.max_submit_rate,
        };
        let cluster = SlurmCluster::with_cli(spec, options, SlurmCli::new())
            .await
            .context("starting the cluster")?;
        Ok(cluster)
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
        summarize(s)
    )
}

impl PoolArgs {
    /// Scales (or starts adapting) as the flags say, and waits for the
    /// workers that must be there: `--workers`, or the adaptive minimum.
    pub async fn bring_up(&self, cluster: &SlurmCluster) -> anyhow::Result<()> {
        let wanted = match self.adapt {
            Some((min, max)) => {
                cluster.adapt(min, max);
                min
            }
            None => {
                cluster.scale(self.workers);
                self.workers
            }
        };
        wait_with_progress(cluster, wanted, self.wait_timeout.duration()).await
    }
}

/// Waits for `n` workers, showing progress: a live line on a terminal, a
/// log line per change otherwise. On failure the cluster is closed before
/// the error is returned.
pub async fn wait_with_progress(
    cluster: &SlurmCluster,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
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
            tokio::time::sleep(Duration::from_millis(200)).await;
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
