//! Adaptive pools on the real local Slurm: a burst of tasks grows the pool,
//! the pool returns to its minimum once idle, and nothing oscillates.

mod common;

use std::time::{Duration, Instant};

use common::{exclusive, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job};
use drover::cluster::SlurmCluster;
use drover::protocol::JobAction;
use drover::slurm::JobState;
use drover::tasks::TaskSpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_grows_an_adaptive_pool_which_returns_to_zero_without_oscillating() {
    let Some(slurm) = local_slurm("a_burst_grows_an_adaptive_pool") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let mut options = test_cluster_options();
    options.idle_timeout = Duration::from_secs(3);
    options.cooldown = Duration::from_secs(2);
    let spec = test_job("drover-adapt", 1, logs.path()).build().unwrap();
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    let name = cluster.job_name().to_string();
    cluster.adapt(0, 8);
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
