//! Adaptive pools on the real local Slurm: a burst of tasks grows the pool,
//! the pool returns to its minimum once idle, and nothing oscillates.

mod common;

use std::time::{Duration, Instant};

use common::{exclusive, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job};
use drover::cluster::SlurmCluster;
use drover::protocol::JobAction;
use drover::slurm::JobState;
use drover::tasks::TaskSpec;

/// A pool of 1-core workers adapting between 0 and `max` jobs, with
/// `(idle timeout, cooldown)` in seconds; and its job name.
async fn adaptive(
    slurm: common::TestSlurm,
    logs: &tempfile::TempDir,
    prefix: &str,
    (idle, cooldown): (u64, u64),
    max: usize,
) -> (SlurmCluster, String) {
    let (spec, options) = adaptive_parts(logs, prefix, (idle, cooldown));
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    let name = cluster.job_name().to_string();
    cluster.adapt(0, max);
    (cluster, name)
}

/// An adaptive pool's job (one core) and options, journaled in `logs`.
fn adaptive_parts(
    logs: &tempfile::TempDir,
    prefix: &str,
    (idle, cooldown): (u64, u64),
) -> (drover::config::JobSpec, drover::cluster::ClusterOptions) {
    let mut options = test_cluster_options();
    options.idle_timeout = Duration::from_secs(idle);
    options.cooldown = Duration::from_secs(cooldown);
    options.journal = Some(logs.path().join("pool.journal"));
    (test_job(prefix, 1, logs.path()).build().unwrap(), options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_grows_an_adaptive_pool_which_returns_to_zero_without_oscillating() {
    let Some(slurm) = local_slurm("a_burst_grows_an_adaptive_pool") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let (cluster, name) = adaptive(slurm, &logs, "drover-adapt", (3, 2), 8).await;
    cluster.rounds(3).await;
    assert_eq!(cluster.status().submitted, 0, "no work, no jobs");

    // 16 one-core tasks of 3 s: demand 16 cores, capped at 8 workers.
    let client = cluster.client();
    let tasks: Vec<TaskSpec> = (0..16)
        .map(|i| TaskSpec {
            argv: vec!["sh".into(), "-c".into(), format!("sleep 3; echo {i}")],
            cores: 1,
            ..Default::default()
        })
        .collect();
    let ids = client.submit(&tasks).await.unwrap();
    cluster
        .wait_for_workers(8, Duration::from_secs(60))
        .await
        .unwrap();
    common::all_succeed(&client, &ids).await;

    // Idle past the timeout, the pool goes back to zero.
    let start = Instant::now();
    loop {
        let queued = slurm_cmd("squeue", &["-h", "-n", &name]);
        if queued.trim().is_empty() && cluster.scheduler().live_workers() == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the pool did not shrink to 0: {queued}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the pool take two more looks at Slurm, so it knows how the jobs ended.
    cluster.rounds(2).await;
    let status = cluster.status();
    assert_eq!(
        status.submitted, 8,
        "one scale-up of 8 jobs, no resubmission: {status:?}"
    );
    assert!(
        status
            .jobs
            .iter()
            .all(|j| j.action != Some(JobAction::Cancelling)),
        "no job of the scale-up was cancelled: every one served and retired: {:?}",
        status.jobs
    );
    assert!(
        status.jobs.iter().all(|j| j.state == JobState::Completed),
        "{:?}",
        status.jobs
    );
    let adapt = status.adapt.as_ref().unwrap();
    assert_eq!((adapt.min_workers, adapt.max_workers), (0, 8), "{adapt:?}");
    assert_eq!(status.target_jobs, 0);
    cluster.close().await.unwrap();
}

/// Idle jobs an adaptive pool keeps only because it went up within its
/// cooldown are counted, each its cores for as long as the cooldown kept
/// it: one 1-core job, idle 1 s after its 1 s task, kept until 12 s after
/// the pool went up. The count survives a restart from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_jobs_kept_for_the_cooldown_are_counted_in_the_report() {
    let Some(slurm) = local_slurm("idle_jobs_kept_for_the_cooldown") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let (spec, options) = adaptive_parts(&logs, "drover-cooldown", (1, 12));
    let cluster = SlurmCluster::new(spec.clone(), options.clone(), slurm.clone())
        .await
        .unwrap();
    let name = cluster.job_name().to_string();
    cluster.adapt(0, 1);
    cluster.rounds(2).await;
    let client = cluster.client();
    let task = TaskSpec {
        argv: vec!["sleep".into(), "1".into()],
        cores: 1,
        ..Default::default()
    };
    let submitted = Instant::now();
    let ids = client.submit(&[task]).await.unwrap();
    common::all_succeed(&client, &ids).await;
    let ended = submitted.elapsed();
    // Kept from the end of the task plus the idle timeout until the
    // cooldown after the pool went up (within a round of the submission).
    let expected = 12.0 - ended.as_secs_f64() - 1.0;
    assert!(expected > 3.0, "the task ended too late to tell: {ended:?}");
    let start = Instant::now();
    while !slurm_cmd("squeue", &["-h", "-n", &name]).trim().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "the pool did not go down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.rounds(1).await;
    let kept = cluster.report().total.cooldown_idle_core_seconds;
    eprintln!("kept for the cooldown: {kept:.2} core-s; expected {expected:.2}");
    assert!(
        (kept - expected).abs() <= 2.0,
        "kept {kept:.1} core-s for the cooldown; expected {expected:.1} (task ended {ended:?} after the submission)"
    );
    // A successor on the journal goes on from what was counted.
    cluster.hand_over();
    drop(cluster);
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    cluster.rounds(1).await;
    let after = cluster.report().total.cooldown_idle_core_seconds;
    assert!(
        (after - kept).abs() < 0.01,
        "after the restart {after:.3} core-s kept for the cooldown; before {kept:.3}"
    );
    cluster.close().await.unwrap();
}
