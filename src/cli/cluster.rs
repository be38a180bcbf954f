//! `drover cluster up`, `drover scale`, `drover close`: a pool in the
//! foreground (or detached), and its remote control through the scheduler.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use drover::client::SchedulerClient;
use drover::protocol::SchedulerFile;
use tokio::signal::unix::{signal, SignalKind};

use super::pool::PoolArgs;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a pool and keep it until Ctrl-C, SIGTERM or `drover close`.
    Up(Box<UpArgs>),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pool: PoolArgs,
    /// Run in the background once the workers are up; its log goes next to the job logs.
    #[arg(long)]
    detach: bool,
    /// (internal) this process is the detached cluster.
    #[arg(long, hide = true)]
    detached_child: bool,
}

pub async fn run(config: Option<PathBuf>, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClusterCommand::Up(args) if args.detach && !args.detached_child => {
            detach(config, *args).await
        }
        ClusterCommand::Up(args) => up(config, *args).await,
    }
}

async fn up(config: Option<PathBuf>, args: UpArgs) -> anyhow::Result<ExitCode> {
    let cluster = args.pool.start(config).await?;
    let file = cluster.scheduler_file().display().to_string();
    println!(
        "cluster {} (jobs named {})",
        cluster.cluster_id(),
        cluster.job_name()
    );
    println!("export DROVER_SCHEDULER_FILE={file}");
    if let Some(d) = cluster.dask() {
        println!("export DASK_SCHEDULER_ADDRESS={}", d.address);
        println!(
            "export DROVER_DASK_SCHEDULER_FILE={}",
            d.scheduler_file.display()
        );
    }
    args.pool.bring_up(&cluster).await?;
    println!("ready: drover status --scheduler-file {file}");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = cluster.close_requested() => "drover close",
    };
    tracing::info!("closing the cluster ({why})");
    cluster.close().await?;
    println!("closed cluster {}", cluster.cluster_id());
    Ok(ExitCode::SUCCESS)
}

/// Starts `drover cluster up` again in its own session, waits until its
/// workers are up (or it fails), and leaves it running.
async fn detach(config: Option<PathBuf>, args: UpArgs) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let spec = drover::config::ConfigSources::discover(config.clone())
        .job_options(args.pool.job.clone())?
        .build()?;
    spec.ensure_log_directory()
        .with_context(|| format!("creating {}", spec.log_directory.display()))?;
    let stamp = drover::protocol::unix_ms();
    let file = spec.scheduler_file.clone().unwrap_or_else(|| {
        spec.log_directory
            .join(format!("drover-cluster-{stamp}.scheduler.json"))
    });
    let log = spec
        .log_directory
        .join(format!("drover-cluster-{stamp}.log"));
    let mut argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    argv.extend([
        "--detached-child".into(),
        "--scheduler-file".into(),
        file.display().to_string(),
    ]);
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("starting the detached cluster")?;
    loop {
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::bail!(
                "the detached cluster exited ({status}); its log {}:\n{text}",
                log.display()
            );
        }
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready: ")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "cluster running in the background (pid {}), log {}",
        child.id(),
        log.display()
    );
    println!("export DROVER_SCHEDULER_FILE={}", file.display());
    if let Ok(f) = drover::protocol::SchedulerFile::read(&file) {
        if let Some(d) = f.dask {
            println!("export DASK_SCHEDULER_ADDRESS={}", d.address);
            println!(
                "export DROVER_DASK_SCHEDULER_FILE={}",
                d.scheduler_file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Workers wanted.
    workers: usize,
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let client = SchedulerClient::from_file(&SchedulerFile::read(&args.scheduler_file)?);
    client
        .scale(args.workers)
        .await
        .context("asking the cluster to scale")?;
    println!("scaling to {} workers", args.workers);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
    /// How long to wait for the cluster to finish closing.
    #[arg(long, value_name = "TIME", default_value = "60s")]
    timeout: drover::config::Timeout,
}

pub async fn close(args: CloseArgs) -> anyhow::Result<ExitCode> {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let client = SchedulerClient::from_file(&file);
    client
        .close()
        .await
        .context("asking the cluster to close")?;
    // The cluster is closed when its scheduler stops answering.
    let deadline = tokio::time::Instant::now() + args.timeout.duration();
    while client.workers().await.is_ok() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "cluster {} is still closing after {}",
                file.cluster_id,
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("closed cluster {}", file.cluster_id);
    Ok(ExitCode::SUCCESS)
}
