//! The Dask worker process of a `dask` job, under a supervisor. With
//! drover's agent as the nanny (the default) each agent runs one Dask
//! worker without Dask's nanny, restarts it when it dies, and ends it when
//! it outgrows its memory limit, as Dask's nanny would, at the cost of one
//! interpreter instead of two. With Dask's nanny, one process serves the
//! whole job and nobody restarts it. Either way the supervisor retires
//! the worker through Dask before the agent leaves, so its results move
//! first, and stops it when the agent is done. A worker Slurm itself stops
//! (SIGTERM reaches every process of the job: preemption, `scancel`)
//! retires through Dask on its own, by drover's preload (`--preload`).

use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::process::Child;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::dask::{DaskApi, DaskWorkerCommand};
use crate::protocol::DaskEndpoint;

/// How long a Dask worker gets to close after SIGTERM before SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the supervisor reads the worker's resident memory.
const MEMORY_EVERY: Duration = Duration::from_millis(500);
/// The share of its memory limit at which a worker is ended and restarted
/// (Dask's nanny's default, `distributed.worker.memory.terminate`).
const TERMINATE_AT: f64 = 0.95;
/// A worker that dies sooner than this after starting failed to start.
const QUICK: Duration = Duration::from_secs(30);
/// Failed starts in a row after which the supervisor gives up.
const MAX_QUICK_FAILURES: u32 = 3;
/// The pause before a restart.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the supervisor does when the worker dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Supervision {
    /// Start it again (drover's agent is the nanny).
    pub restart: bool,
    /// End it above this many resident bytes, when set.
    pub memory_limit: Option<u64>,
}

/// Shared between the handle and the supervisor task.
struct Shared {
    /// Set once the worker is meant to end: no restart then.
    leaving: AtomicBool,
    /// Notified by `stop`.
    stop: Notify,
    /// How long the worker gets to close once stopped.
    grace: Mutex<Duration>,
}

/// The supervised Dask worker process(es) of one agent or one job.
pub(super) struct DaskProcess {
    shared: Arc<Shared>,
    /// Set to the final status when the supervisor gives up.
    exited: watch::Receiver<Option<String>>,
    api: DaskApi,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The private directory (0700, its name random) drover's preload is
    /// written to; removed when the process is dropped.
    _preload: Option<tempfile::TempDir>,
}

/// Writes drover's preload (`WORKER_PRELOAD`) into a new private
/// directory: only this user can read or replace what Python runs.
fn write_preload() -> std::io::Result<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::Builder::new().prefix("drover-dask-").tempdir()?;
    let path = dir.path().join("drover_dask_preload.py");
    std::fs::write(&path, crate::dask::WORKER_PRELOAD)?;
    Ok((dir, path))
}

fn spawn(command: &DaskWorkerCommand) -> std::io::Result<Child> {
    let argv = command.argv();
    tracing::info!(argv = ?argv, "starting the Dask worker");
    tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// Resident memory of `pid`, in bytes, from `/proc`.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// How one run of the worker ended.
enum End {
    /// It exited, with this status.
    Exited(String),
    /// It used too much memory and was ended.
    OverMemory(u64),
    /// The agent asked it to stop.
    Stopped,
}

/// Waits for the worker to end, ending it above its memory limit.
async fn watch_one(child: &mut Child, supervision: Supervision, shared: &Shared) -> End {
    let mut tick = tokio::time::interval(MEMORY_EVERY);
    loop {
        tokio::select! {
            status = child.wait() => return End::Exited(describe(status)),
            _ = shared.stop.notified() => return End::Stopped,
            _ = tick.tick() => {
                let (Some(limit), Some(pid)) = (supervision.memory_limit, child.id()) else { continue };
                let rss = resident_bytes(pid).unwrap_or(0);
                if rss as f64 > limit as f64 * TERMINATE_AT {
                    let _ = child.kill().await;
                    return End::OverMemory(rss);
                }
            }
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown status ({e})"),
    }
}

/// Ends `child`: SIGTERM, then SIGKILL after `grace`.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!("the Dask worker did not stop after SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// Runs the worker until it is stopped or, without restarts, until it
/// ends; restarts it as its supervision says.
async fn supervise(
    mut child: Child,
    command: DaskWorkerCommand,
    supervision: Supervision,
    shared: Arc<Shared>,
    tx: watch::Sender<Option<String>>,
) {
    let mut quick_failures = 0;
    loop {
        let started = Instant::now();
        let why = match watch_one(&mut child, supervision, &shared).await {
            End::Stopped => {
                let grace = *shared.grace.lock();
                return terminate(&mut child, grace).await;
            }
            _ if shared.leaving.load(Ordering::SeqCst) => return,
            End::Exited(status) => format!("it exited ({status})"),
            End::OverMemory(rss) => format!(
                "it used {} of its {} memory limit",
                crate::config::Memory::from_bytes(rss).human(),
                crate::config::Memory::from_bytes(supervision.memory_limit.unwrap_or(0)).human()
            ),
        };
        if !supervision.restart {
            let _ = tx.send(Some(why));
            return;
        }
        quick_failures = if started.elapsed() < QUICK {
            quick_failures + 1
        } else {
            0
        };
        if quick_failures >= MAX_QUICK_FAILURES {
            let _ = tx.send(Some(format!(
                "{why}, the {quick_failures}th time in a row within {QUICK:?} of starting; not restarting it"
            )));
            return;
        }
        tracing::warn!("the Dask worker ended: {why}; restarting it, as a nanny would");
        tokio::select! {
            _ = tokio::time::sleep(RESTART_DELAY) => {}
            _ = shared.stop.notified() => return,
        }
        match spawn(&command) {
            Ok(c) => child = c,
            Err(e) => {
                let _ = tx.send(Some(format!("{why}, and it cannot start again: {e}")));
                return;
            }
        }
    }
}

impl DaskProcess {
    /// Starts the Dask worker under `supervision`; its output goes to the
    /// job's log.
    pub(super) fn start(
        command: &DaskWorkerCommand,
        endpoint: &DaskEndpoint,
        supervision: Supervision,
    ) -> std::io::Result<DaskProcess> {
        // Without it (no writable temporary directory) the worker runs as
        // Dask's own does: stopped by Slurm, it closes without retiring.
        let (preload_dir, preload) = match write_preload() {
            Ok((dir, path)) => (Some(dir), Some(path)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write drover's Dask preload: a worker Slurm stops will close without retiring");
                (None, None)
            }
        };
        let command = &DaskWorkerCommand {
            preload,
            ..command.clone()
        };
        let child = spawn(command)?;
        let (tx, exited) = watch::channel(None);
        let shared = Arc::new(Shared {
            leaving: AtomicBool::new(false),
            stop: Notify::new(),
            grace: Mutex::new(STOP_GRACE),
        });
        let task = tokio::spawn(supervise(
            child,
            command.clone(),
            supervision,
            shared.clone(),
            tx,
        ));
        Ok(DaskProcess {
            shared,
            exited,
            api: DaskApi::new(endpoint),
            supervisor: Mutex::new(Some(task)),
            _preload: preload_dir,
        })
    }

    /// Resolves when the supervisor has given up on the worker, with why.
    pub(super) async fn ended(&self) -> String {
        let mut rx = self.exited.clone();
        loop {
            if let Some(status) = rx.borrow_and_update().clone() {
                return status;
            }
            if rx.changed().await.is_err() {
                // The supervisor was stopped: nothing more will end.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Retires the Dask worker named `name` through the Dask scheduler, so
    /// the results it holds move to other workers before it goes.
    pub(super) async fn retire(&self, name: &str, timeout: Duration) {
        self.shared.leaving.store(true, Ordering::SeqCst);
        let workers = match self.api.workers().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Dask workers; leaving without a Dask retirement");
                return;
            }
        };
        let mine: Vec<String> = workers
            .into_iter()
            .filter(|w| w.name == name)
            .map(|w| w.address)
            .collect();
        if mine.is_empty() {
            return;
        }
        tracing::info!(worker = name, addresses = ?mine, "retiring the Dask worker through Dask (its data moves first)");
        match self.api.retire(&mine, timeout).await {
            Ok(done) if mine.iter().all(|a| done.contains(a)) => {
                tracing::info!(worker = name, "Dask retired the worker")
            }
            Ok(_) => tracing::warn!(
                worker = name,
                "Dask could not move this worker's data elsewhere (no other worker to take it); \
                 results held only here are lost"
            ),
            Err(e) => tracing::warn!(worker = name, error = %e, "Dask retirement failed"),
        }
    }

    /// The worker is leaving: it is not started again when it ends (a
    /// worker Slurm stopped retires and ends on its own).
    pub(super) fn mark_leaving(&self) {
        self.shared.leaving.store(true, Ordering::SeqCst);
    }

    /// Stops the worker (SIGTERM, then SIGKILL after `grace`) and its
    /// supervisor.
    pub(super) async fn stop(&self, grace: Duration) {
        self.shared.leaving.store(true, Ordering::SeqCst);
        *self.shared.grace.lock() = grace;
        let Some(task) = self.supervisor.lock().take() else {
            return;
        };
        self.shared.stop.notify_one();
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_proc() {
        let mine = resident_bytes(std::process::id()).unwrap();
        assert!(mine > 1 << 20, "{mine}");
        assert_eq!(resident_bytes(u32::MAX), None);
    }
}
