//! Ending a pool so that no job outlives it: `close` (workers retire, the
//! rest is cancelled), cancelling by name when the handle is dropped
//! unclosed, and the `drover reaper` watcher process that does the same
//! when the driver dies outright.

use std::sync::Arc;
use std::time::Duration;

use super::pool::Pool;
use super::ClusterError;
use crate::slurm::Slurm;

/// How soon `close` looks again while jobs are leaving: soon at first
/// (retired workers' jobs end within a few hundred milliseconds, and a
/// driver waits for `close`), then less often, up to `CLOSE_POLL_MAX`.
const CLOSE_POLL_FIRST: Duration = Duration::from_millis(40);
const CLOSE_POLL_MAX: Duration = Duration::from_millis(500);
/// How long `close` waits for Slurm to drop cancelled jobs.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Retires every worker, cancels unregistered jobs at once and the rest
/// after the close timeout, and waits until Slurm lists none of the
/// pool's jobs as active; returns how many still are.
pub(crate) async fn close_jobs(pool: &Pool) -> usize {
    {
        pool.books().begin_closing();
    }
    let retiring = pool.scheduler.retire_all("the cluster is closing");
    tracing::info!(
        workers = retiring,
        "closing: retiring workers, cancelling the rest"
    );
    let deadline = tokio::time::Instant::now() + pool.options.close_timeout;
    let mut cancelled_unregistered = false;
    let mut cancelled_all = false;
    let mut pause = CLOSE_POLL_FIRST;
    loop {
        pool.round().await;
        let (active, unregistered) = {
            let books = pool.books();
            (books.active_jobs(), books.unregistered_jobs())
        };
        if active.is_empty() {
            return 0;
        }
        if !cancelled_unregistered && !unregistered.is_empty() {
            cancelled_unregistered = pool.slurm.cancel(&unregistered).await.is_ok();
        }
        let now = tokio::time::Instant::now();
        if now >= deadline && !cancelled_all {
            tracing::warn!(
                jobs = active.len(),
                "workers did not leave in time: cancelling their jobs"
            );
            cancelled_all = pool.slurm.cancel(&active).await.is_ok();
        }
        if now >= deadline + CANCEL_GRACE {
            return active.len();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(CLOSE_POLL_MAX);
    }
}

/// `close_jobs` for every group of a cluster at once; returns how many
/// jobs are still active.
pub(crate) async fn close_jobs_all(pools: &[Arc<Pool>]) -> usize {
    let mut closing = tokio::task::JoinSet::new();
    for pool in pools {
        let pool = pool.clone();
        closing.spawn(async move { close_jobs(&pool).await });
    }
    let mut left = 0;
    while let Some(n) = closing.join_next().await {
        left += n.unwrap_or(0);
    }
    left
}

/// Closes a cluster for good: the jobs of every group, its Dask
/// scheduler, its scheduler.
pub(crate) async fn close(pools: &[Arc<Pool>]) -> Result<(), ClusterError> {
    let left = close_jobs_all(pools).await;
    let pool = &pools[0];
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
