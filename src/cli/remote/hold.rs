//! `drover cluster hold` (internal): run on the host, in an ssh session of
//! a driver elsewhere. While the session lasts the pool is held (a shared
//! lock on its scheduler file). When the session ends without the pool
//! being closed (the laptop slept, crashed, lost its network), the pool is
//! kept `--grace` for a driver to attach again (taking a hold of its own);
//! if none holds it then, it is closed: nothing is left burning.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use drover::client::SchedulerClient;
use drover::protocol::SchedulerFile;
use nix::fcntl::{Flock, FlockArg};
use tokio::io::AsyncReadExt;

use crate::cli::error::{CliError, CliResult, Context};

/// How often the hold asks whether the pool still answers.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// How often a hold taken before its pool looks for the scheduler file.
const LOOK_FOR_FILE: Duration = Duration::from_millis(200);
/// Unanswered looks in a row after which the pool is taken as gone.
const GONE_AFTER: u32 = 3;

#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// The pool's scheduler file (on this host).
    #[arg(long, value_name = "FILE")]
    scheduler_file: PathBuf,
    /// How long the pool is kept once this hold's session ends without a close.
    #[arg(long, value_name = "TIME")]
    grace: drover::config::Timeout,
    /// Taken before the pool starts: wait this long for its scheduler file.
    #[arg(long, value_name = "TIME")]
    wait_for_file: Option<drover::config::Timeout>,
}

pub async fn hold(args: HoldArgs) -> CliResult {
    // Taken before the pool starts, the hold covers the pool from its
    // first moment: a driver gone while it came up still leaves it the
    // grace, then its close.
    let mut ended = std::pin::pin!(session_ended());
    let mut gone_early = false;
    if let Some(wait) = args.wait_for_file {
        let deadline = tokio::time::Instant::now() + wait.duration();
        while !args.scheduler_file.exists() {
            if tokio::time::Instant::now() > deadline {
                return Err(CliError::failure(format!(
                    "no pool wrote {} within {wait}",
                    args.scheduler_file.display()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK_FOR_FILE) => {}
                _ = &mut ended, if !gone_early => gone_early = true,
            }
        }
    }
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let held = lock(&args.scheduler_file, FlockArg::LockShared)?;
    let client = SchedulerClient::from_file(&file);
    if !gone_early {
        say("held");
        tokio::select! {
            _ = &mut ended => {}
            _ = pool_gone(&client) => {
                say("ended");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    drop(held);
    quiet();
    let grace = args.grace.duration();
    tracing::info!(cluster = %file.cluster_id, "the driver is gone: the pool is closed in {} unless one attaches", args.grace);
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = pool_gone(&client) => return Ok(ExitCode::SUCCESS),
    }
    // Another driver's hold keeps it; with none, it closes.
    if lock(&args.scheduler_file, FlockArg::LockExclusiveNonblock).is_ok() {
        tracing::info!(cluster = %file.cluster_id, "no driver attached within the grace: closing the pool");
        client.close().await.context("closing the pool")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A line to the driver; after its session ended nobody reads, and a
/// failed write is no error.
fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// With the session gone nobody reads stdout or stderr: a write there
/// fails, and the log's own report of that failure would panic. What the
/// hold does from here is in the pool's log (its close) instead.
fn quiet() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in [1, 2] {
            // SAFETY: dup2 onto the standard descriptors, which stay open.
            let _ = unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn lock(path: &Path, how: FlockArg) -> Result<Flock<File>, CliError> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(f, how)
        .map_err(|(_, e)| CliError::failure(format!("cannot lock {}: {e}", path.display())))
}

/// Resolves when the session's stdin ends (its ssh connection is gone).
async fn session_ended() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Resolves once the pool has stopped answering (closed).
async fn pool_gone(client: &SchedulerClient) {
    let mut unanswered = 0;
    while unanswered < GONE_AFTER {
        tokio::time::sleep(LOOK_EVERY).await;
        unanswered = match client.worker_counts().await {
            Ok(_) => 0,
            Err(_) => unanswered + 1,
        };
    }
}
