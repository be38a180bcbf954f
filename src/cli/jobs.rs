//! `drover logs`, `drover cancel` and the hidden `drover reaper`: finding a
//! cluster's jobs and their logs again, and ending them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use drover::client::SchedulerClient;
use drover::config::ConfigSources;
use drover::private_fs::read;
use drover::protocol::{ClusterId, SchedulerFile};
use drover::slurm::Slurm;

use super::error::{CliError, CliResult, Context};

/// How often `logs --follow` looks again.
const LOOK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// A worker (name or id such as w3) or a Slurm job id.
    target: String,
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Keep printing what is appended, until interrupted.
    #[arg(long, short = 'f')]
    follow: bool,
}

pub async fn logs(args: LogsArgs) -> CliResult {
    let client = SchedulerClient::from_file(&SchedulerFile::read(&args.scheduler_file)?);
    let status = client
        .cluster()
        .await
        .context("asking the cluster for its jobs")?;
    let job = status.job_for(&args.target).ok_or_else(|| {
        CliError::usage(format!(
            "`{}` is neither a worker nor a job of cluster {}; see `drover status`",
            args.target, status.cluster_id
        ))
    })?;
    let out = job.log.clone();
    // A driver on another machine (`--ssh`) does not see the cluster's
    // filesystem: the scheduler reads the logs for it.
    if !out.parent().is_some_and(Path::exists) {
        return logs_through_scheduler(&client, &args).await;
    }
    let err = out.with_extension("err");
    let mut offsets = Vec::new();
    for path in [&out, &err] {
        println!("==> {} <==", path.display());
        let end = match args.tail {
            Some(n) => {
                let chunk = read::tail(path);
                let lines: Vec<&str> = chunk.text.lines().collect();
                for l in &lines[lines.len().saturating_sub(n)..] {
                    println!("{l}");
                }
                chunk.to
            }
            None => print_new(path, 0),
        };
        offsets.push(end);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        for (path, offset) in [&out, &err].into_iter().zip(offsets.iter_mut()) {
            *offset = print_new(path, *offset);
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// The most of a log read through the scheduler for `--tail`.
const MAX_TAIL_BYTES: usize = 4 << 20;

/// `drover logs` where the log files cannot be opened: the same output,
/// each log read through the scheduler a bounded chunk at a time.
async fn logs_through_scheduler(client: &SchedulerClient, args: &LogsArgs) -> CliResult {
    use drover::protocol::LogQuery;
    let mut queries = [
        LogQuery {
            from: 0,
            err: false,
        },
        LogQuery { from: 0, err: true },
    ];
    for q in &mut queries {
        let stream = if q.err { "stderr" } else { "stdout" };
        println!("==> {} {stream} (through the scheduler) <==", args.target);
        let mut text = String::new();
        loop {
            let chunk = client
                .job_log(&args.target, q)
                .await
                .context("reading the log")?;
            if chunk.text.is_empty() {
                break;
            }
            q.from = chunk.to;
            match args.tail {
                // Only the end is printed: what was read stays bounded.
                Some(_) => {
                    text.push_str(&chunk.text);
                    if text.len() > MAX_TAIL_BYTES {
                        let cut = text.len() - MAX_TAIL_BYTES;
                        let cut = (cut..text.len())
                            .find(|i| text.is_char_boundary(*i))
                            .unwrap_or(0);
                        text.drain(..cut);
                    }
                }
                None => print!("{}", chunk.text),
            }
        }
        if let Some(n) = args.tail {
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(n)..] {
                println!("{l}");
            }
        }
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        for q in &mut queries {
            let chunk = client
                .job_log(&args.target, q)
                .await
                .context("reading the log")?;
            print!("{}", chunk.text);
            q.from = chunk.to;
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Prints the log from `offset` to its end, a bounded chunk at a time
/// (the log is never read through a link); returns where it ended.
fn print_new(path: &Path, mut offset: u64) -> u64 {
    loop {
        let chunk = read::read_forward(path, offset, read::MAX_CHUNK);
        if chunk.text.is_empty() {
            return chunk.to;
        }
        print!("{}", chunk.text);
        offset = chunk.to;
    }
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The cluster id (as its jobs' names and comments carry it).
    #[arg(long, value_name = "ID", required_unless_present = "scheduler_file")]
    cluster: Option<ClusterId>,
    /// Take the cluster id from this scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: Option<PathBuf>,
    #[command(flatten)]
    slurm: super::slurm_args::SlurmArgs,
}

pub async fn cancel(config: Option<PathBuf>, args: CancelArgs) -> CliResult {
    let id = match (args.cluster, &args.scheduler_file) {
        (Some(id), _) => id,
        (None, Some(f)) => SchedulerFile::read(f)?.cluster_id,
        (None, None) => {
            return Err(CliError::usage(
                "give --cluster ID or --scheduler-file FILE",
            ))
        }
    };
    let pool = ConfigSources::discover(config).pool_options(args.slurm.pool())?;
    let slurm = drover::slurm::connect(&pool).await?;
    let tag = format!("drover:{id}");
    let suffix = format!("-{id}");
    let jobs: Vec<_> = slurm
        .jobs(None)
        .await?
        .into_iter()
        .filter(|j| j.state.is_active() && (j.comment == tag || j.name.ends_with(&suffix)))
        .map(|j| j.job)
        .collect();
    slurm.cancel(&jobs).await?;
    println!("cancelled {} jobs of cluster {id}", jobs.len());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ReaperArgs {
    /// The driver process to watch.
    #[arg(long)]
    pid: u32,
    /// The job name every job of the cluster carries.
    #[arg(long)]
    job_name: String,
    /// With a journal: keep the jobs this long for the pool to come back.
    #[arg(long, value_name = "TIME", requires_all = ["scheduler_file", "cluster_id"])]
    reattach_grace: Option<drover::config::Timeout>,
    /// With --reattach-grace: where the pool publishes its scheduler.
    #[arg(long, value_name = "FILE")]
    scheduler_file: Option<std::path::PathBuf>,
    /// With --reattach-grace: the cluster that must answer there.
    #[arg(long, value_name = "ID")]
    cluster_id: Option<String>,
}

/// Waits for the driver to go, then cancels every job of its cluster
/// (unless, with a journal, the pool comes back in time).
pub async fn reaper(args: ReaperArgs) -> CliResult {
    let pool = drover::config::pool_from_env().unwrap_or_default();
    let reattach = match (args.reattach_grace, args.scheduler_file, args.cluster_id) {
        (Some(grace), Some(scheduler_file), Some(cluster_id)) => {
            Some(drover::cluster::reaper::Reattach {
                grace: grace.duration(),
                scheduler_file,
                cluster_id,
            })
        }
        _ => None,
    };
    let slurm = drover::slurm::backend(&pool)?;
    drover::cluster::reaper::watch(args.pid, &args.job_name, slurm.as_ref(), reattach.as_ref())
        .await
        .context("cancelling the cluster's jobs")?;
    Ok(ExitCode::SUCCESS)
}
