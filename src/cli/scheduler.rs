//! `drover scheduler`: a standalone scheduler, for the manual setup where
//! one `srun` step runs it and others run `drover worker`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use drover::config::{ConfigSources, PoolOptions, Timeout};
use drover::scheduler::{Bind, Scheduler, SchedulerConfig};
use tokio::signal::unix::{signal, SignalKind};

use super::error::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// Listen on this interface's IPv4 address, e.g. ib0.
    #[arg(long, value_name = "IFACE", conflicts_with = "host")]
    interface: Option<String>,
    /// Listen on this address (default 127.0.0.1 when no interface is given).
    #[arg(long, value_name = "ADDR")]
    host: Option<IpAddr>,
    /// Port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the scheduler file workers and tools read.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
    /// How often workers heartbeat (default 5s, or $DROVER_HEARTBEAT_INTERVAL).
    #[arg(long, value_name = "TIME")]
    heartbeat_interval: Option<Timeout>,
    /// Missed heartbeats before a worker is declared lost (default 3, or $DROVER_MISSED_HEARTBEATS).
    #[arg(long, value_name = "N")]
    missed_heartbeats: Option<u32>,
    /// Polls held open at once; other workers poll once per interval (default 16384, or $DROVER_MAX_HELD_POLLS).
    #[arg(long, value_name = "N")]
    max_held_polls: Option<usize>,
    /// Keep no accounting: neither the tasks' busy time nor what the pool
    /// cost (default: kept, or $DROVER_ACCOUNTING).
    #[arg(long)]
    no_accounting: bool,
    /// Serve plain HTTP instead of TLS: anyone on the network can read the
    /// token. For measuring what TLS costs, never for real pools.
    #[arg(long, hide = true)]
    insecure_plain_http: bool,
    /// Make every change durable in this file before acknowledging it; a
    /// scheduler started on an existing journal continues from it (same
    /// address and credentials, its tasks, results and workers).
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// With --journal: rewrite it as a snapshot once it has grown this
    /// much (default 64MiB, or $DROVER_JOURNAL_COMPACT_AFTER).
    #[arg(long, value_name = "SIZE", requires = "journal")]
    journal_compact_after: Option<drover::config::Memory>,
}

pub async fn run(config: Option<PathBuf>, args: SchedulerArgs) -> CliResult {
    let bind = match (args.interface, args.host) {
        (Some(i), _) => Bind::Interface(i),
        (None, Some(h)) => Bind::Host(h),
        (None, None) => Bind::Host(IpAddr::from([127, 0, 0, 1])),
    };
    let flags = PoolOptions {
        heartbeat_interval: args.heartbeat_interval,
        missed_heartbeats: args.missed_heartbeats,
        max_held_polls: args.max_held_polls,
        journal_compact_after: args.journal_compact_after,
        accounting: args.no_accounting.then_some(false),
        ..Default::default()
    };
    let pool = ConfigSources::discover(config).pool_options(flags)?;
    let mut config = SchedulerConfig::new(bind).with(&pool)?;
    config.port = args.port;
    config.tls = !args.insecure_plain_http;
    config.journal = args.journal.clone();
    let scheduler = Scheduler::start(config).await?;
    scheduler
        .write_scheduler_file(&args.scheduler_file)
        .context("publishing the scheduler")?;
    println!(
        "drover scheduler at {} (cluster {}), scheduler file {}",
        scheduler.url(),
        scheduler.cluster_id(),
        args.scheduler_file.display()
    );
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        failure = scheduler.journal_failed() => {
            // The requests it failed are answered first (503, with why);
            // every change meanwhile is refused the same way.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            scheduler.stop();
            return Err(super::error::CliError::failure(format!(
                "the journal cannot be written ({failure}): stopped; start again with the same --journal once there is room, and it continues from the last change it acknowledged"
            )));
        }
    };
    scheduler.stop();
    // Remove the file only while it is still ours.
    if drover::protocol::SchedulerFile::read(&args.scheduler_file)
        .map(|f| f.cluster_id == *scheduler.cluster_id())
        .unwrap_or(false)
    {
        let _ = std::fs::remove_file(&args.scheduler_file);
    }
    tracing::info!("scheduler stopped by {why}");
    Ok(ExitCode::SUCCESS)
}
