//! Ending a pool so that no job outlives it: `close` (workers retire, the
//! rest is cancelled), cancelling by name when the handle is dropped
//! unclosed, and the `drover reaper` watcher process that does the same
//! when the driver dies outright.

use std::sync::Arc;
use std::time::Duration;

use super::pool::Pool;
use super::ClusterError;
use crate::slurm::Slurm;

/// How long `close` waits for Slurm to drop cancelled jobs.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// How long `close` waits for accounting to record its jobs' ends (the
/// database hears of an end a moment after the controller).
const ACCOUNTING_GRACE: Duration = Duration::from_secs(5);
/// How long `close` waits for a round of the loop before it runs one
/// itself (a loop that is gone must not leave jobs behind; two rounds at
/// once are harmless while closing, as nothing is submitted).
const ROUND_WAIT: Duration = Duration::from_secs(2);

/// Closing as a phase of the one loop (`rounds.rs`): every group's books
/// turn to closing (their rounds retire, cancel and submit nothing), the
/// workers are told to retire, and this waits until Slurm lists none of
/// the pool's jobs as active; returns how many still are.
pub(crate) async fn close_jobs_all(pools: &[Arc<Pool>]) -> usize {
    let now = tokio::time::Instant::now();
    let deadline = now + pools[0].options.close_timeout;
    for pool in pools {
        pool.books().begin_closing(now, deadline);
    }
    let retiring = pools[0].scheduler.retire_all("the cluster is closing");
    tracing::info!(
        workers = retiring,
        "closing: retiring workers, cancelling the rest"
    );
    let mut rounds = pools[0].rounds.subscribe();
    pools[0].wake.notify_one();
    // Only a listing taken while closing can say no job is left: a pool
    // continued from its journal knows its jobs from its first round.
    let mut listed = false;
    loop {
        let active: usize = pools.iter().map(|p| p.books().active_jobs().len()).sum();
        if active == 0 && listed {
            return 0;
        }
        if tokio::time::Instant::now() >= deadline + CANCEL_GRACE {
            return active;
        }
        if tokio::time::timeout(ROUND_WAIT, rounds.changed())
            .await
            .is_err()
        {
            super::rounds::round(pools).await;
        }
        listed = true;
    }
}

/// Closes a cluster for good: the jobs of every group, its Dask
/// scheduler, its scheduler.
/// `stop_loop` ends the reconcile loop once the jobs are gone.
pub(crate) async fn close(
    pools: &[Arc<Pool>],
    stop_loop: impl FnOnce(),
) -> Result<(), ClusterError> {
    let left = close_jobs_all(pools).await;
    stop_loop();
    let pool = &pools[0];
    // What the pool cost, with its jobs' ends: the last word of the pool.
    let until = tokio::time::Instant::now() + ACCOUNTING_GRACE;
    while super::allocations::read_allocations(pools).await == Some(false)
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(ROUND_WAIT / 4).await;
    }
    let report = pool.scheduler.report();
    tracing::info!(source = ?report.source, "pool closed: {}", report.summary());
    if let Some(dask) = &pool.dask {
        dask.stop().await;
    }
    pool.scheduler.record_closed().await;
    pool.scheduler.stop();
    let _ = std::fs::remove_file(&pool.scheduler_file);
    match left {
        0 => Ok(()),
        n => Err(ClusterError::Leftover(n)),
    }
}

/// Cancels every job named `name` through `slurm`, from synchronous code
/// such as `Drop`, inside or outside an async runtime: on a thread of its
/// own with a runtime of its own.
pub(crate) fn cancel_named_blocking(slurm: &Arc<dyn Slurm>, name: &str) {
    let slurm = slurm.clone();
    let name = name.to_string();
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(rt) => rt
                .block_on(slurm.cancel_named(&name))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .join();
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cancelling the cluster's jobs failed"),
        Err(_) => tracing::warn!("cancelling the cluster's jobs panicked"),
    }
}

/// Spawns `drover reaper`, in its own process group so a terminal's
/// Ctrl-C does not reach it: it cancels every job of the cluster once this
/// process is gone.
pub(crate) fn spawn_reaper(pool: &Pool) -> Result<std::process::Child, ClusterError> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&pool.spec.drover_bin);
    cmd.args([
        "reaper",
        "--pid",
        &std::process::id().to_string(),
        "--job-name",
    ])
    .arg(&pool.spec.job_name)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .process_group(0);
    if pool.options.journal.is_some() {
        cmd.arg("--reattach-grace")
            .arg(format!("{}ms", pool.options.reattach_grace.as_millis()))
            .arg("--scheduler-file")
            .arg(&pool.scheduler_file)
            .arg("--cluster-id")
            .arg(pool.scheduler.cluster_id().to_string());
    }
    if let Some(conf) = &pool.options.slurm_conf {
        cmd.env("SLURM_CONF", conf);
    }
    // The same Slurm, the same way (slurmrestd and its token, say).
    cmd.envs(pool.slurm.child_env());
    cmd.spawn().map_err(|cause| ClusterError::Io {
        what: format!(
            "starting the orphan watcher `{} reaper`",
            pool.spec.drover_bin.display()
        ),
        cause,
    })
}
