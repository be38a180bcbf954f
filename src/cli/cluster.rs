//! `drover cluster up`, `drover scale`, `drover close`: a pool in the
//! foreground (or detached), and its remote control through the scheduler.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use drover::client::SchedulerClient;
use drover::protocol::SchedulerFile;
use tokio::signal::unix::{signal, SignalKind};

use super::error::{CliError, CliResult, Context};
use super::pool::PoolArgs;

/// How often `close` and `--detach` look again.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// How long a scheduler job waits for its predecessor's journal.
const JOURNAL_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Start a pool and keep it until Ctrl-C, SIGTERM or `drover close`.
    Up(Box<UpArgs>),
    /// Reach a pool started with `cluster up --ssh` or `run --ssh` again, from here.
    Attach(super::remote::RemoteArgs),
    /// (internal) hold a pool on this host for a driver elsewhere.
    #[command(hide = true)]
    Hold(super::remote::HoldArgs),
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pool: PoolArgs,
    #[command(flatten)]
    remote: super::remote::RemoteArgs,
    /// Run in the background once the workers are up; its log goes next to the job logs.
    #[arg(long)]
    detach: bool,
    /// (internal) this process is the detached cluster.
    #[arg(long, hide = true)]
    detached_child: bool,
    /// Run the pool itself (its scheduler) as a small Slurm job of its own, on
    /// --journal: before that job's time limit a successor job takes over,
    /// and the workers stay. This command returns once the pool is ready.
    #[arg(long, conflicts_with = "detach")]
    scheduler_job: bool,
    /// With --scheduler-job: each scheduler job's time limit (default: the
    /// workers' --walltime).
    #[arg(long, value_name = "TIME")]
    scheduler_job_walltime: Option<drover::config::Walltime>,
    /// (internal) this process is the scheduler job.
    #[arg(long, hide = true)]
    scheduler_job_inside: bool,
}

pub async fn run(config: Option<PathBuf>, command: ClusterCommand) -> CliResult {
    let command = match command {
        ClusterCommand::Up(mut args) => {
            args.remote = args.remote.with_site(config.clone())?;
            ClusterCommand::Up(args)
        }
        ClusterCommand::Attach(args) => ClusterCommand::Attach(args.with_site(config.clone())?),
        other => other,
    };
    match command {
        ClusterCommand::Up(args) if args.remote.ssh.is_some() => {
            if args.detach {
                return Err(CliError::usage(
                    "--detach with --ssh: the pool on the host runs detached already; this command is its near end (attach again later with `drover cluster attach --ssh HOST --name NAME`)",
                ));
            }
            let pool = args.pool.layered(config)?;
            let mut up_args = Vec::new();
            if args.scheduler_job {
                up_args.push("--scheduler-job".to_string());
            }
            if let Some(w) = args.scheduler_job_walltime {
                up_args.extend(["--scheduler-job-walltime".to_string(), w.to_string()]);
            }
            let sent = super::remote::Sent {
                settings: &pool,
                up_args,
            };
            let remote = super::remote::Remote::new(&args.remote, &pool.pool, Some(sent))?;
            remote.foreground().await
        }
        ClusterCommand::Attach(args) => {
            let (Some(_), Some(_)) = (&args.ssh, &args.name) else {
                return Err(CliError::usage(
                    "cluster attach needs --ssh HOST and --name NAME (the name `cluster up --ssh` or `run --ssh` printed)",
                ));
            };
            let pool = drover::config::pool_from_env().map_err(CliError::usage)?;
            super::remote::Remote::new(&args, &pool, None)?
                .foreground()
                .await
        }
        ClusterCommand::Hold(args) => super::remote::hold(args).await,
        ClusterCommand::Up(args) if args.detach && !args.detached_child => {
            detach(config, *args).await
        }
        ClusterCommand::Up(args) if args.scheduler_job && !args.scheduler_job_inside => {
            scheduler_job(config, *args).await
        }
        ClusterCommand::Up(args) => up(config, *args).await,
    }
}

/// `--scheduler-job` at the login node: submit the pool as a job.
async fn scheduler_job(config: Option<PathBuf>, args: UpArgs) -> CliResult {
    let pool = args.pool.layered(config)?;
    let Some(journal) = pool.pool.journal.clone() else {
        return Err(CliError::usage(
            "--scheduler-job needs --journal PATH (or `journal` in [pool]) on a filesystem the nodes share: each scheduler job continues the pool from it",
        ));
    };
    let spec = pool.job.clone().build()?;
    let walltime = args.scheduler_job_walltime.unwrap_or(spec.walltime);
    let options = drover::cluster::ClusterOptions::new(drover::scheduler::Bind::Host(
        std::net::IpAddr::from([127, 0, 0, 1]),
    ))
    .with(&pool.pool)?;
    let lead = super::scheduler_job::handover_lead(options.replace_lead);
    let slurm = drover::slurm::connect(&pool.pool).await?;
    let wait = pool.wait_timeout() + Duration::from_secs(60);
    super::scheduler_job::submit(&spec, &journal, (walltime, lead), slurm.as_ref(), wait).await
}

async fn up(config: Option<PathBuf>, args: UpArgs) -> CliResult {
    let pool = args.pool.layered(config)?;
    let cluster = match args.scheduler_job_inside {
        true => pool.start_when_journal_free(JOURNAL_WAIT).await?,
        false => pool.start().await?,
    };
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
        for (k, v) in d.tls.iter().flat_map(|t| t.client_env()) {
            println!("export {k}={v}");
        }
    }
    pool.bring_up(&cluster).await?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let slurm = drover::slurm::backend(&pool.pool)?;
    println!("ready: drover status --scheduler-file {file}");
    // Told once it listens for every way to be closed.
    super::ready::tell_parent();
    // A scheduler job hands over this long before its time limit.
    let lead = super::scheduler_job::handover_lead(cluster.replace_lead());
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = cluster.close_requested() => "drover close",
        successor = super::scheduler_job::successor_running(slurm.as_ref(), lead), if args.scheduler_job_inside => {
            return Ok(super::scheduler_job::hand_over(&cluster, successor));
        }
    };
    tracing::info!("closing the cluster ({why})");
    cluster.close().await?;
    println!("closed cluster {}", cluster.cluster_id());
    Ok(ExitCode::SUCCESS)
}

/// Starts `drover cluster up` again in its own session, waits until its
/// workers are up (or it fails), and leaves it running.
async fn detach(config: Option<PathBuf>, args: UpArgs) -> CliResult {
    use std::os::unix::process::CommandExt;
    let spec = args.pool.layered(config)?.job.build()?;
    let dir = spec
        .ensure_log_directory()
        .with_context(|| format!("creating {}", spec.log_directory.display()))?;
    let stamp = drover::protocol::unix_ms();
    let log_name = format!("drover-cluster-{stamp}.log");
    let log = spec.log_directory.join(&log_name);
    let mut argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    argv.push("--detached-child".into());
    // The child writes its scheduler file where the user said, else here.
    let file = match &spec.scheduler_file {
        Some(f) => f.clone(),
        None => {
            let f = spec
                .log_directory
                .join(format!("drover-cluster-{stamp}.scheduler.json"));
            argv.extend(["--scheduler-file".into(), f.display().to_string()]);
            f
        }
    };
    let out = dir
        .create_file(&log_name)
        .with_context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening {}", log.display()))?;
    let exe = std::env::current_exe().context("finding the drover executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let (ready, writer) = super::ready::attach(&mut command)?;
    let mut child = command.spawn().context("starting the detached cluster")?;
    drop(writer);
    if let super::ready::Outcome::Exited(status) = ready.wait(&mut child).await? {
        let text = drover::private_fs::read::tail_lines(&log, 40).unwrap_or_default();
        return Err(CliError::failure(format!(
            "the detached cluster exited ({status}); its log {}:\n{text}",
            log.display()
        )));
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
            for (k, v) in d.tls.iter().flat_map(|t| t.client_env()) {
                println!("export {k}={v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Workers wanted.
    workers: usize,
    /// In a pool with groups: the group to scale.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
}

pub async fn scale(args: ScaleArgs) -> CliResult {
    let client = SchedulerClient::from_file(&SchedulerFile::read(&args.scheduler_file)?);
    client
        .scale(args.workers, args.group.as_deref())
        .await
        .context("asking the cluster to scale")?;
    match &args.group {
        Some(g) => println!("scaling group {g} to {} workers", args.workers),
        None => println!("scaling to {} workers", args.workers),
    }
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

pub async fn close(args: CloseArgs) -> CliResult {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let client = SchedulerClient::from_file(&file);
    client
        .close()
        .await
        .context("asking the cluster to close")?;
    // The cluster is closed when its scheduler stops answering.
    let deadline = tokio::time::Instant::now() + args.timeout.duration();
    while client.worker_counts().await.is_ok() {
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::failure(format!(
                "cluster {} is still closing after {}",
                file.cluster_id, args.timeout
            )));
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
    println!("closed cluster {}", file.cluster_id);
    Ok(ExitCode::SUCCESS)
}
