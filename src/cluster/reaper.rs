//! The orphan watcher's logic: wait for the driver process to go, then
//! cancel every job of its pool by name. `drover reaper` runs it in a
//! process of its own, started by the pool, so that a driver killed outright
//! (SIGKILL, the OOM killer) leaves no job behind.
//!
//! A pool with a journal can come back: its jobs are kept for a grace
//! period, and left alone if a scheduler of the same cluster answers at the
//! scheduler file in that time (the pool started again on its journal, with
//! a watcher of its own).

use std::path::PathBuf;
use std::time::Duration;

use crate::client::SchedulerClient;
use crate::protocol::SchedulerFile;
use crate::slurm::{Slurm, SlurmError};

/// How often the watcher looks at the driver.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How a dead driver's pool may come back: started again on its journal.
#[derive(Debug, Clone)]
pub struct Reattach {
    /// How long to wait for it.
    pub grace: Duration,
    /// Where it publishes its scheduler.
    pub scheduler_file: PathBuf,
    /// The cluster it must be.
    pub cluster_id: String,
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Waits until process `pid` is gone, then cancels every job named
/// `job_name`, unless the pool comes back as `reattach` allows.
pub async fn watch(
    pid: u32,
    job_name: &str,
    slurm: &dyn Slurm,
    reattach: Option<&Reattach>,
) -> Result<(), SlurmError> {
    while alive(pid) {
        tokio::time::sleep(LOOK_EVERY).await;
    }
    if let Some(r) = reattach {
        tracing::warn!(
            driver = pid,
            grace_s = r.grace.as_secs_f64(),
            "driver gone: keeping its jobs for a pool to come back on its journal"
        );
        if came_back(r).await {
            tracing::info!(%job_name, "the pool came back on its journal: its jobs are its own again");
            return Ok(());
        }
    }
    let result = slurm.cancel_named(job_name).await;
    tracing::warn!(
        driver = pid,
        %job_name,
        ok = result.is_ok(),
        "driver gone: cancelled the cluster's jobs"
    );
    result
}

/// Waits up to the grace for a scheduler of the cluster to answer.
async fn came_back(r: &Reattach) -> bool {
    let deadline = tokio::time::Instant::now() + r.grace;
    loop {
        if answers(r).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Whether the scheduler file names the cluster and its scheduler answers
/// (the dead driver's own scheduler died with it).
async fn answers(r: &Reattach) -> bool {
    let Ok(file) = SchedulerFile::read(&r.scheduler_file) else {
        return false;
    };
    file.cluster_id.to_string() == r.cluster_id
        && SchedulerClient::from_file(&file)
            .worker_counts()
            .await
            .is_ok()
}
