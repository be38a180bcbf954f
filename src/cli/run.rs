//! `drover run --workers N -- COMMAND...`: the launcher-script wrapper.
//! Workers up, the command run with the pool's address in its environment,
//! every job cancelled when it exits, whatever the exit; its status is ours.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use super::error::{CliResult, Context};
use super::pool::PoolArgs;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pool: PoolArgs,
    /// The command to run once the workers are up.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub async fn run(config: Option<PathBuf>, args: RunArgs) -> CliResult {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let pool = args.pool.layered(config)?;
    let cluster = pool.start().await?;
    tokio::select! {
        r = pool.bring_up(&cluster) => r?,
        _ = term.recv() => { cluster.close().await?; return Ok(ExitCode::from(143)); }
        _ = int.recv() => { cluster.close().await?; return Ok(ExitCode::from(130)); }
    }
    let mut command = tokio::process::Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("DROVER_SCHEDULER_FILE", cluster.scheduler_file())
        .env("DROVER_SCHEDULER_ADDRESS", cluster.address())
        .env("DROVER_CLUSTER_ID", cluster.cluster_id());
    // A Dask driver's `Client()` connects through Dask's own config variable.
    if let Some(d) = cluster.dask() {
        command
            .env("DASK_SCHEDULER_ADDRESS", &d.address)
            .env("DROVER_DASK_SCHEDULER_FILE", &d.scheduler_file)
            .envs(d.tls.iter().flat_map(|t| t.client_env()));
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            cluster.close().await?;
            return Err(e).with_context(|| format!("running `{}`", args.command[0]));
        }
    };
    // Signals go on to the command; its exit ends the pool.
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw);
    let forward = |sig: Signal| {
        if let Some(pid) = pid {
            let _ = kill(pid, sig);
        }
    };
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.context("waiting for the command")?,
            _ = term.recv() => forward(Signal::SIGTERM),
            _ = int.recv() => forward(Signal::SIGINT),
            _ = hup.recv() => forward(Signal::SIGHUP),
        }
    };
    cluster.close().await.context("closing the cluster")?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        _ => 1,
    };
    Ok(ExitCode::from(code))
}
