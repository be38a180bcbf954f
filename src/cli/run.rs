//! `drover run --workers N -- COMMAND...`: the launcher-script wrapper.
//! Workers up, the command run with the pool's address in its environment,
//! every job cancelled when it exits, whatever the exit; its status is ours.
//! With `--ssh HOST` the pool runs on HOST and the command here (`remote`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::driver::Signals;
use super::error::{CliResult, Context};
use super::pool::PoolArgs;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pool: PoolArgs,
    #[command(flatten)]
    remote: super::remote::RemoteArgs,
    /// The command to run once the workers are up.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub async fn run(config: Option<PathBuf>, args: RunArgs) -> CliResult {
    let mut signals = Signals::listen()?;
    let pool = args.pool.layered(config.clone())?;
    let remote = args.remote.with_site(config)?;
    if remote.ssh.is_some() {
        let sent = super::remote::Sent {
            settings: &pool,
            up_args: Vec::new(),
        };
        let remote = super::remote::Remote::new(&remote, &pool.pool, Some(sent))?;
        return remote.run(&args.command, &mut signals).await;
    }
    let cluster = pool.start().await?;
    tokio::select! {
        r = pool.bring_up(&cluster) => r?,
        _ = signals.term.recv() => { cluster.close().await?; return Ok(ExitCode::from(143)); }
        _ = signals.int.recv() => { cluster.close().await?; return Ok(ExitCode::from(130)); }
    }
    let env = super::driver::pool_env(
        cluster.scheduler_file(),
        &cluster.address(),
        &cluster.cluster_id(),
        cluster.dask().as_ref(),
    );
    let status = super::driver::run(&args.command, &env, &mut signals).await;
    cluster.close().await.context("closing the cluster")?;
    eprintln!("drover: {}", cluster.report().summary());
    let status = status.with_context(|| format!("running `{}`", args.command[0]))?;
    Ok(super::driver::exit_code(status))
}
