//! Jobs that end, or stall, for a reason of Slurm's (issue 32), on the
//! local Slurm: a job Slurm holds after its launch failed is released by
//! the pool and starts. Slow (Slurm lets a requeued job start only once
//! its credential has expired, two minutes on), so it runs on this
//! machine's 22.05 over its commands only; the fast form, a replacement,
//! is `slurm_site`'s on every release and both backends.

mod common;

use std::time::Duration;

use common::{local_slurm, log_dir, show_job, test_cluster_options, test_job, FailingProlog};
use drover::cluster::SlurmCluster;
use drover::config::HeldJobs;
use drover::slurm::JobRef;

/// A job whose node's prolog fails is requeued held
/// (`launch_failed_requeued_held`) and its node drained. The pool (with
/// the default `held-jobs = "release"`) releases it once: the same job
/// starts on the other node when Slurm lets it, keeping its place, and its
/// worker registers. Nothing else is submitted and no failure is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_held_after_its_prolog_failed_is_released_and_its_worker_comes() {
    let Some(slurm) = local_slurm("a_job_held_after_its_prolog_failed_is_released") else {
        return;
    };
    assert!(
        !common::over_rest(),
        "drover releases jobs over Slurm's commands only: run this suite without DROVER_SLURM_API=rest"
    );
    let _prolog = FailingProlog::install();
    let logs = log_dir();
    let spec = test_job("drover-release", 1, logs.path());
    let options = test_cluster_options();
    assert_eq!(options.held_jobs, HeldJobs::Release, "the default");
    let cluster = SlurmCluster::new(spec.build().unwrap(), options, slurm)
        .await
        .unwrap();
    cluster.scale(1);
    let JobRef::Job(id) = wait_for_job(&cluster).await else {
        panic!("one worker is one job")
    };
    // Requeued held (the prolog failed), then released by the pool.
    common::until("Slurm requeued the job", Duration::from_secs(30), || {
        show_job(id).get("Restarts").is_some_and(|r| r == "1")
    })
    .await;
    // Slurm's requeue delay (the credential's lifetime, 120 s) comes first.
    cluster
        .wait_for_workers(1, Duration::from_secs(240))
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", cluster.status().jobs));
    let status = cluster.status();
    assert_eq!(
        status.submitted, 1,
        "released, not replaced: {:#?}",
        status.jobs
    );
    assert_eq!(status.jobs[0].job, JobRef::Job(id));
    let running = show_job(id);
    assert_eq!(running["JobState"], "RUNNING", "{running:?}");
    assert_eq!(running["Restarts"], "1", "{running:?}");
    assert!(status.failures.is_empty(), "{:?}", status.failures);
    cluster.close().await.unwrap();
}

/// The pool's one job, once it has one.
async fn wait_for_job(cluster: &SlurmCluster) -> JobRef {
    common::until(
        "the pool submitted its job",
        Duration::from_secs(30),
        || !cluster.status().jobs.is_empty(),
    )
    .await;
    cluster.status().jobs[0].job
}
