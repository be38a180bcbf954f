//! A site as real clusters are, on the local Slurm with accounting
//! (slurmdbd and MariaDB): accounts and QOS that Slurm checks, a QOS that
//! caps the jobs a user may submit, and `MaxArraySize`. Run on both
//! backends (`DROVER_SLURM_API=rest` for slurmrestd).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    drover, exclusive, local_cluster, local_slurm, log_dir, show_job, slurm_cmd, slurm_conf,
    test_cluster_options, test_job, unique, until, FailingProlog,
};
use drover::cluster::SlurmCluster;
use drover::config::HeldJobs;
use drover::protocol::{ClusterStatus, HoldReason, JobEnd, PoolPhase, StartupFailure};
use drover::slurm::{JobId, JobRef, JobState};

/// A QOS of the test's own, allowed for root in account `drover`, removed
/// at the end.
struct Qos(String);

impl Qos {
    fn new(prefix: &str, limits: &[&str]) -> Qos {
        let name = unique(prefix);
        let mut add = vec!["-i", "add", "qos", &name];
        add.extend_from_slice(limits);
        slurm_cmd("sacctmgr", &add);
        let grant = format!("qos+={name}");
        slurm_cmd(
            "sacctmgr",
            &[
                "-i",
                "modify",
                "user",
                "root",
                "where",
                "account=drover",
                "set",
                &grant,
            ],
        );
        Qos(name)
    }

    fn set(&self, limit: &str) {
        slurm_cmd("sacctmgr", &["-i", "modify", "qos", &self.0, "set", limit]);
    }
}

impl Drop for Qos {
    fn drop(&mut self) {
        let _ = Command::new("sacctmgr")
            .args(["-i", "delete", "qos", &self.0])
            .env("SLURM_CONF", slurm_conf())
            .output();
    }
}

/// slurm.conf overrides for one test (`slurm/local-cluster set`), undone
/// when it ends, however it ends.
struct Overrides;

impl Overrides {
    fn set(settings: &[&str]) -> Overrides {
        let mut args = vec!["set"];
        args.extend_from_slice(settings);
        local_cluster(&args);
        Overrides
    }
}

impl Drop for Overrides {
    fn drop(&mut self) {
        local_cluster(&["set", "--reset"]);
    }
}

/// A job's final state as accounting keeps it, once it has one.
async fn accounted_state(id: JobId) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = slurm_cmd(
            "sacct",
            &["-n", "-X", "-P", "-o", "State", "-j", &id.to_string()],
        );
        let state = out.lines().next().unwrap_or_default().trim().to_string();
        if !state.is_empty() && !matches!(state.as_str(), "PENDING" | "RUNNING" | "COMPLETING") {
            return state;
        }
        assert!(Instant::now() < deadline, "job {id}: sacct says {state:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_and_a_qos_reach_slurm_and_sacct_keeps_the_final_states() {
    let Some(slurm) = local_slurm("an_account_and_a_qos_reach_slurm") else {
        return;
    };
    let _serial = exclusive().await;
    let qos = Qos::new("drover-qos", &[]);
    let logs = log_dir();
    let spec = test_job("drover-acct", 1, logs.path())
        .account("drover")
        .qos(qos.0.clone());
    let cluster = SlurmCluster::new(spec.build().unwrap(), test_cluster_options(), slurm)
        .await
        .unwrap();
    cluster.scale(2);
    cluster
        .wait_for_workers(2, Duration::from_secs(60))
        .await
        .unwrap();
    let ids: Vec<JobId> = cluster
        .status()
        .jobs
        .iter()
        .filter_map(|j| j.job_id)
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let job = show_job(*id);
        assert_eq!(job["Account"], "drover", "{job:?}");
        assert_eq!(job["QOS"], qos.0, "{job:?}");
    }
    cluster.close().await.unwrap();
    // Gone from the queue in time; accounting keeps how they ended.
    for id in ids {
        assert_eq!(accounted_state(id).await, "COMPLETED");
    }
}

#[test]
fn an_account_or_qos_slurm_refuses_fails_the_start_with_its_words_and_submits_nothing() {
    if local_slurm("an_account_or_qos_slurm_refuses").is_none() {
        return;
    }
    // Not while another test restarts the controller with its settings.
    let _serial = common::exclusive_blocking();
    for (flag, value, words) in [
        (
            "--account",
            "nosuch",
            "Invalid account or account/partition combination specified",
        ),
        ("--qos", "nosuch", "Invalid qos specification"),
    ] {
        let name = unique("drover-refused");
        let out = drover(&[
            "run",
            "--workers",
            "2",
            flag,
            value,
            "--job-name",
            &name,
            "--interface",
            "ib0",
            "--scheduler-interface",
            &common::bridge(),
            "--wait-timeout",
            "30s",
            "--",
            "true",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(words), "{flag}: {stderr}");
        // Accounting lists every job submitted, however it ended.
        let names = slurm_cmd(
            "sacct",
            &["-n", "-X", "-P", "-o", "JobName", "-S", "now-5minutes"],
        );
        assert!(
            !names.lines().any(|n| n.starts_with(&name)),
            "{flag}: a job was submitted: {names}"
        );
    }
}

/// The pool's active jobs in Slurm.
fn active(status: &ClusterStatus) -> usize {
    status.jobs.iter().filter(|j| j.state.is_active()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos_capping_4_jobs_holds_a_pool_of_8_at_4_until_the_cap_is_lifted() {
    let Some(slurm) = local_slurm("a_qos_capping_4_jobs") else {
        return;
    };
    let _serial = exclusive().await;
    let cap = Qos::new("drover-cap", &["MaxSubmitJobsPerUser=4"]);
    let logs = log_dir();
    let spec = test_job("drover-cap", 1, logs.path())
        .account("drover")
        .qos(cap.0.clone());
    let cluster = SlurmCluster::new(spec.build().unwrap(), test_cluster_options(), slurm)
        .await
        .unwrap();
    common::assert_backend(&cluster.status());
    cluster.scale(8);
    cluster
        .wait_for_workers(4, Duration::from_secs(60))
        .await
        .unwrap();
    until(
        "status says why the rest wait",
        Duration::from_secs(30),
        || {
            cluster.status().held_back.is_some_and(|h| {
                matches!(
                    h.reasons[..],
                    [HoldReason::SlurmCap {
                        at: 4,
                        waiting: 4,
                        ..
                    }]
                )
            })
        },
    )
    .await;
    let status = cluster.status();
    let held = status.held_back.clone().unwrap();
    // Slurm's words: sbatch prints QOSMaxSubmitJobPerUserLimit, both say this.
    assert!(
        matches!(&held.reasons[..], [HoldReason::SlurmCap { slurm, .. }] if slurm.contains("job submit limit")),
        "{held}"
    );
    assert!(
        status.failures.is_empty() && status.phase == PoolPhase::Running,
        "{status:?}"
    );
    // Ten seconds at the cap: 4 run, 4 wait, and the pool asks seldom.
    let before = status.limit_refusals;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = cluster.status();
    assert_eq!((status.registered, active(&status)), (4, 4), "{status:?}");
    let asked = status.limit_refusals - before;
    assert!(asked <= 6, "{asked} refused submissions in 10 s at the cap");
    cap.set("MaxSubmitJobsPerUser=-1");
    cluster
        .wait_for_workers(8, Duration::from_secs(90))
        .await
        .unwrap();
    assert!(cluster.status().held_back.is_none());
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_12_goes_as_arrays_of_at_most_max_array_size() {
    let Some(slurm) = local_slurm("a_pool_of_12_goes_as_arrays") else {
        return;
    };
    let _serial = exclusive().await;
    let _small = Overrides::set(&["MaxArraySize=5"]);
    let logs = log_dir();
    let spec = test_job("drover-arrays", 1, logs.path());
    let cluster = SlurmCluster::new(spec.build().unwrap(), test_cluster_options(), slurm)
        .await
        .unwrap();
    cluster.scale(12);
    cluster
        .wait_for_workers(12, Duration::from_secs(90))
        .await
        .unwrap();
    let status = cluster.status();
    let mut arrays = std::collections::BTreeMap::<u64, u32>::new();
    for j in &status.jobs {
        match j.job {
            JobRef::Task { array, .. } => *arrays.entry(array.get()).or_default() += 1,
            JobRef::Job(_) => *arrays.entry(0).or_default() += 1,
        }
    }
    assert!(arrays.values().all(|n| *n <= 5), "{arrays:?}");
    assert!(arrays.len() >= 3, "{arrays:?}");
    assert!(
        status.failures.is_empty() && status.phase == PoolPhase::Running,
        "{status:?}"
    );
    cluster.close().await.unwrap();
}

/// A site that forgets ended jobs fast (`MinJobAge=2`): a worker job that
/// failed and left `squeue` between two of the pool's looks is read back
/// from accounting (`sacct`), state and exit code, and counted as the
/// failure it was. Over slurmrestd, whose accounting drover does not read
/// yet, and without accounting, it shows as ended, state unknown, and is
/// asked about once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gone_from_squeue_is_read_back_from_accounting() {
    let Some(slurm) = local_slurm("a_job_gone_from_squeue") else {
        return;
    };
    let _serial = exclusive().await;
    let _forgetful = Overrides::set(&["MinJobAge=2"]);
    let logs = log_dir();
    // It fails a while after it starts, when the pool has stopped looking
    // often (it looks every 300 ms only while Slurm has yet to consider a
    // submission), so the pool misses its end in the listing.
    let spec = test_job("drover-forgotten", 1, logs.path())
        .job_script_prologue(vec!["sleep 4".to_string(), "exit 3".to_string()]);
    let mut options = test_cluster_options();
    options.poll_interval = Duration::from_secs(120);
    let cluster = SlurmCluster::new(spec.build().unwrap(), options, slurm)
        .await
        .unwrap();
    cluster.scale(1);
    until("the job listed", Duration::from_secs(30), || {
        cluster.status().jobs.iter().any(|j| j.job_id.is_some())
    })
    .await;
    let job = cluster.status().jobs[0].job;
    let start = Instant::now();
    loop {
        // Every state: squeue alone leaves out ended jobs it still keeps.
        let listed = slurm_cmd(
            "squeue",
            &["-h", "-t", "all", "-n", cluster.job_name(), "-o", "%i %T"],
        );
        if listed
            .lines()
            .all(|l| l.split(' ').next() != Some(&job.to_string()))
        {
            break;
        }
        // slurmctld purges ended jobs older than MinJobAge once a minute.
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "job {job} still in squeue after 150 s: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A scale wakes the pool: its next round finds the job gone.
    cluster.scale(1);
    let start = Instant::now();
    while !cluster
        .status()
        .jobs
        .iter()
        .any(|j| j.job == job && j.end.is_some())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {job}'s end not known within 30 s: {:#?}",
            cluster.status().jobs
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = cluster.status();
    let shown = status.jobs.iter().find(|j| j.job == job).unwrap();
    if common::over_rest() || !common::accounting_on() {
        assert_eq!(shown.end, Some(JobEnd::Unknown), "{shown:?}");
        assert_eq!(shown.state_words(), "ended, state unknown (no accounting)");
    } else {
        assert!(matches!(shown.end, Some(JobEnd::Sacct { .. })), "{shown:?}");
        assert_eq!(
            (shown.state.clone(), shown.exit_code),
            (JobState::Failed, Some(3))
        );
        // ...and counted as the failure it was, once the pool next looks.
        cluster.scale(1);
        until("the failure recorded", Duration::from_secs(30), || {
            cluster.status().failures.iter().any(|f| {
                matches!(f, StartupFailure::JobEnded { job: j, state: JobState::Failed, .. } if *j == job)
            })
        })
        .await;
    }
    cluster.close().await.unwrap();
}

/// A job whose node's prolog fails is requeued held by Slurm
/// (`launch_failed_requeued_held`) with its node drained. With
/// `held-jobs = "replace"` the pool cancels it and its replacement's worker
/// comes up on the other node at once, on either backend; the wait ends
/// with the worker, not at its timeout, and no start-up failure is counted.
/// (Releasing it, the default, is `slurm_ends`'s: Slurm lets a requeued
/// job start only once its credential has expired.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_held_after_its_prolog_failed_is_replaced_and_a_worker_comes() {
    let Some(slurm) = local_slurm("a_job_held_after_its_prolog_failed") else {
        return;
    };
    let _serial = exclusive().await;
    let _prolog = FailingProlog::install();
    let logs = log_dir();
    let spec = test_job("drover-held", 1, logs.path());
    let mut options = test_cluster_options();
    options.held_jobs = HeldJobs::Replace;
    let cluster = SlurmCluster::new(spec.build().unwrap(), options, slurm)
        .await
        .unwrap();
    cluster.scale(1);
    cluster
        .wait_for_workers(1, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", cluster.status().jobs));
    let status = cluster.status();
    assert_eq!(status.submitted, 2, "replaced: {:#?}", status.jobs);
    let JobRef::Job(first) = status.jobs[0].job else {
        panic!("one worker is one job: {:?}", status.jobs[0])
    };
    let held = show_job(first);
    assert_eq!(held["Restarts"], "1", "Slurm requeued it: {held:?}");
    assert_eq!(held["JobState"], "CANCELLED", "{held:?}");
    assert!(status.failures.is_empty(), "{:?}", status.failures);
    cluster.close().await.unwrap();
}
