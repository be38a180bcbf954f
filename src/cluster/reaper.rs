//! The orphan watcher's logic: wait for the driver process to go, then
//! cancel every job of its pool by name. `drover reaper` runs it in a
//! process of its own, started by the pool, so that a driver killed outright
//! (SIGKILL, the OOM killer) leaves no job behind.

use std::time::Duration;

use crate::slurm::{Slurm, SlurmError};

/// How often the watcher looks at the driver.
const LOOK_EVERY: Duration = Duration::from_millis(500);

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

/// Waits until process `pid` is gone, then cancels every job named `job_name`.
pub async fn watch(pid: u32, job_name: &str, slurm: &dyn Slurm) -> Result<(), SlurmError> {
    while alive(pid) {
        tokio::time::sleep(LOOK_EVERY).await;
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
