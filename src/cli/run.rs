//! `drover run --workers N -- COMMAND...`: the launcher-script wrapper.
//! Workers up, the command run with the pool's address in its environment,
//! every job cancelled when it exits, whatever the exit; its status is ours.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use super::pool::PoolArgs;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pool: PoolArgs,
    /// The command to run once the workers are up.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub async fn run(config: Option<PathBuf>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let cluster = args.pool.start(config).await?;
    tokio::select! {
        r = args.pool.bring_up(&cluster) => r?,
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
            .env("DROVER_DASK_SCHEDULER_FILE", &d.scheduler_file);
    }
    let mut child = command.spawn();
    let status = match &mut child {
        Err(e) => {
            cluster.close().await?;
            return Err(anyhow::anyhow!("{e}"))
                .with_context(|| format!("running `{}`", args.command[0]));
        }
        Ok(child) => {
            let pid = child.id().map(|p| p as i32);
            let forward = |sig: &str| {
                if let Some(pid) = pid {
                    let _ = std::process::Command::new("kill")
                        .args([sig, &pid.to_string()])
                        .status();
                }
            };
            loop {
                tokio::select! {
                    s = child.wait() => break s.context("waiting for the command")?,
                    _ = term.recv() => forward("-TERM"),
                    _ = int.recv() => forward("-INT"),
                    _ = hup.recv() => forward("-HUP"),
                }
            }
        }
    };
    cluster.close().await.context("closing the cluster")?;
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128 + sig as u8,
        _ => 1,
    };
    Ok(ExitCode::from(code))
}
