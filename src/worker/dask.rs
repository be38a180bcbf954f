//! A `dask` job's Dask worker process, supervised by the agent: started once
//! per job (with `--nworkers` for several processes), watched so the agents
//! leave when it dies, retired through Dask before they leave, and stopped
//! when they have all gone, so the job ends with its agents.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::dask::{DaskApi, DaskWorkerCommand};
use crate::protocol::DaskEndpoint;

/// How long a Dask worker gets to close after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running Dask worker process of this job.
pub(super) struct DaskProcess {
    pid: Option<u32>,
    exited: watch::Receiver<Option<String>>,
    api: DaskApi,
    waiter: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl DaskProcess {
    /// Starts the Dask worker; its output goes to the job's log.
    pub(super) fn start(
        command: &DaskWorkerCommand,
        endpoint: &DaskEndpoint,
    ) -> std::io::Result<DaskProcess> {
        let argv = command.argv();
        tracing::info!(argv = ?argv, "starting the Dask worker");
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id();
        let (tx, exited) = watch::channel(None);
        let waiter = tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown status ({e})"),
            };
            let _ = tx.send(Some(status));
        });
        Ok(DaskProcess {
            pid,
            exited,
            api: DaskApi::new(&endpoint.http),
            waiter: Mutex::new(Some(waiter)),
        })
    }

    /// Resolves when the Dask worker process has ended, with its status.
    pub(super) async fn ended(&self) -> String {
        let mut rx = self.exited.clone();
        loop {
            if let Some(status) = rx.borrow_and_update().clone() {
                return status;
            }
            if rx.changed().await.is_err() {
                return "unknown status".into();
            }
        }
    }

    /// Retires the Dask worker named `name` through the Dask scheduler, so
    /// the results it holds move to other workers before it goes.
    pub(super) async fn retire(&self, name: &str, timeout: Duration) {
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

    /// Stops the process: SIGTERM, then SIGKILL after a grace period.
    pub(super) async fn stop(&self) {
        let Some(waiter) = self.waiter.lock().take() else {
            return;
        };
        if self.exited.borrow().is_none() {
            if let Some(pid) = self.pid {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            if tokio::time::timeout(STOP_GRACE, self.ended())
                .await
                .is_err()
            {
                tracing::warn!("the Dask worker did not stop after SIGTERM; killing it");
                waiter.abort(); // drops the child, which kills it
            }
        }
        let _ = waiter.await;
    }
}
