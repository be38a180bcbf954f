//! How a detached `drover cluster up` tells the command that started it
//! that its pool is up: a line on a pipe the parent holds, never a line
//! found in a log (a log another process may also write, or that a user's
//! output could imitate). The child gets the pipe's write end as an
//! inherited descriptor named in `DROVER_READY_FD`; it reopens it through
//! `/proc/self/fd`, so no unsafe descriptor handling is needed.

use std::io::{BufRead, BufReader, PipeReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use super::error::{CliError, Context};

/// The environment variable that names the descriptor.
const READY_FD: &str = "DROVER_READY_FD";
/// What the child writes once ready.
const READY: &str = "ready";
/// How often the parent checks whether the child has exited.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// The parent's end: read once the child runs.
pub struct ReadyPipe(PipeReader);

/// How the wait ended.
pub enum Outcome {
    Ready,
    /// The child exited (with this status) before it was ready.
    Exited(ExitStatus),
}

/// Gives `command` the write end of a new pipe; the parent keeps the
/// read end. Call `wait` after spawning (the write end is dropped here,
/// once the command holds its copy).
pub fn attach(command: &mut Command) -> Result<(ReadyPipe, std::io::PipeWriter), CliError> {
    let (reader, writer) = std::io::pipe().context("making the readiness pipe")?;
    // Inherited across exec: the one descriptor the child must keep.
    nix::fcntl::fcntl(
        &writer,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(std::io::Error::from)
    .context("handing the readiness pipe on")?;
    command.env(READY_FD, writer.as_raw_fd().to_string());
    Ok((ReadyPipe(reader), writer))
}

impl ReadyPipe {
    /// Waits until the child says it is ready or exits. Descendants of the
    /// child may hold the pipe open after it exits, so its exit is watched
    /// too, not only the pipe's end.
    pub async fn wait(self, child: &mut Child) -> Result<Outcome, CliError> {
        let reader = self.0;
        let mut said = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(reader).read_line(&mut line);
            line.trim_end() == READY
        });
        loop {
            tokio::select! {
                ready = &mut said => {
                    if ready.unwrap_or(false) {
                        return Ok(Outcome::Ready);
                    }
                    // The pipe closed without a word: the child is ending.
                    let status = child.wait().context("watching the detached cluster")?;
                    return Ok(Outcome::Exited(status));
                }
                () = tokio::time::sleep(LOOK_EVERY) => {
                    if let Some(status) = child.try_wait().context("watching the detached cluster")? {
                        return Ok(Outcome::Exited(status));
                    }
                }
            }
        }
    }
}

/// In the child: tells the parent the pool is up, if a parent waits.
pub fn tell_parent() {
    let Some(fd) = std::env::var(READY_FD)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return;
    };
    let told = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .and_then(|mut pipe| pipe.write_all(format!("{READY}\n").as_bytes()));
    if let Err(e) = told {
        tracing::warn!(error = %e, "could not tell the starting command that the pool is up");
    }
}
