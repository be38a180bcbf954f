//! The driver command of `drover run`: started with the pool's address in
//! its environment, sent the signals drover gets, and its exit status made
//! ours. Shared by pools here and pools on an `--ssh` host.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, Signal as Listener, SignalKind};

use super::error::{CliError, Context};

/// The signals `drover run` listens for, from its start: a Ctrl-C while
/// the pool comes up closes it; once the driver runs, they go on to it.
pub struct Signals {
    pub term: Listener,
    pub int: Listener,
    hup: Listener,
}

impl Signals {
    pub fn listen() -> Result<Signals, CliError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("listening for SIGHUP")?,
        })
    }
}

/// Runs `argv` with `env` added until it exits, passing signals on.
/// `Err` only when it could not be started.
pub async fn run(
    argv: &[String],
    env: &[(String, String)],
    signals: &mut Signals,
) -> Result<ExitStatus, std::io::Error> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw);
    let forward = |sig: Signal| {
        if let Some(pid) = pid {
            let _ = kill(pid, sig);
        }
    };
    loop {
        tokio::select! {
            s = child.wait() => return s,
            _ = signals.term.recv() => forward(Signal::SIGTERM),
            _ = signals.int.recv() => forward(Signal::SIGINT),
            _ = signals.hup.recv() => forward(Signal::SIGHUP),
        }
    }
}

/// The environment a driver reaches its pool by: drover's scheduler file,
/// address and cluster id, and for a Dask pool Dask's own configuration
/// variables, through which an unchanged `Client()` connects.
pub fn pool_env(
    scheduler_file: &std::path::Path,
    address: &str,
    cluster_id: &str,
    dask: Option<&drover::protocol::DaskEndpoint>,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "DROVER_SCHEDULER_FILE".into(),
            scheduler_file.display().to_string(),
        ),
        ("DROVER_SCHEDULER_ADDRESS".into(), address.to_string()),
        ("DROVER_CLUSTER_ID".into(), cluster_id.to_string()),
    ];
    if let Some(d) = dask {
        env.push(("DASK_SCHEDULER_ADDRESS".into(), d.address.clone()));
        env.push((
            "DROVER_DASK_SCHEDULER_FILE".into(),
            d.scheduler_file.display().to_string(),
        ));
        env.extend(
            d.tls
                .iter()
                .flat_map(|t| t.client_env())
                .map(|(k, v)| (k.into(), v)),
        );
    }
    env
}

/// The exit code that stands for `status`: its code, or 128 + its signal.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        _ => 1,
    };
    ExitCode::from(code)
}
