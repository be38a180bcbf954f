//! Pools that outlive their allocations, on the real local Slurm: workers
//! leave before their time limit and are replaced early, and a node whose
//! slurmd dies has its jobs replaced on the other node.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    exclusive, final_states, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job,
    unique, CancelOnDrop, ReviveNode,
};
use drover::cluster::SlurmCluster;
use drover::protocol::WorkerState;
use drover::slurm::{JobId, JobState};
use drover::tasks::{TaskId, TaskSpec, TaskState};

/// Workers heartbeat every second, so a dead node's workers are lost in 3 s.
fn fast_heartbeats() {
    std::env::set_var("DROVER_HEARTBEAT_INTERVAL", "1s");
    std::env::set_var("DROVER_MISSED_HEARTBEATS", "3");
}

/// Workers taking tasks (registered, neither draining nor retiring).
fn taking_tasks(cluster: &SlurmCluster) -> usize {
    cluster
        .scheduler()
        .workers()
        .iter()
        .filter(|w| w.state == WorkerState::Running)
        .count()
}

fn sleep_task(seconds: u32, i: usize) -> TaskSpec {
    TaskSpec {
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!("sleep {seconds}; echo task {i}"),
        ],
        cores: 1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_crosses_a_two_minute_walltime_without_losing_a_task() {
    let Some(slurm) = local_slurm("a_steady_stream_crosses_a_two_minute_walltime") else {
        return;
    };
    let _serial = exclusive().await;
    fast_heartbeats();
    let logs = log_dir();
    let mut options = test_cluster_options();
    options.replace_lead = Duration::from_secs(15);
    let spec = test_job("drover-walltime", 1, logs.path())
        .walltime("00:02:00".parse::<drover::config::Walltime>().unwrap())
        .walltime_margin("30s".parse::<drover::config::Timeout>().unwrap())
        .build()
        .unwrap();
    assert!(
        spec.directives()
            .iter()
            .any(|d| d.option == "--signal" && d.value.as_deref() == Some("B:USR1@30")),
        "jobs ask Slurm for the warning signal: {:?}",
        spec.directives()
    );
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    cluster.scale(4);
    cluster
        .wait_for_workers(4, Duration::from_secs(60))
        .await
        .unwrap();

    // One 3-second task a second for 150 s: the first jobs' workers leave
    // 78-90 s in (2 min minus the 30 s margin and up to 12 s of stagger).
    let client = cluster.client();
    let start = Instant::now();
    let mut next_submit = start;
    let mut ids: Vec<TaskId> = Vec::new();
    let mut jobs = BTreeSet::new();
    let mut most_taking = 0;
    while start.elapsed() < Duration::from_secs(150) {
        if Instant::now() >= next_submit {
            let i = ids.len();
            ids.extend(client.submit(&[sleep_task(3, i)]).await.unwrap());
            next_submit += Duration::from_secs(1);
        }
        most_taking = most_taking.max(taking_tasks(&cluster));
        jobs.extend(
            cluster
                .status()
                .jobs
                .iter()
                .filter_map(|j| j.job_id.map(JobId::get)),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let done = client
        .wait_tasks(Some(&ids), Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(done.len(), ids.len());
    let failed: Vec<_> = done
        .iter()
        .filter(|t| t.state != TaskState::Succeeded)
        .collect();
    assert!(failed.is_empty(), "every task succeeds: {failed:?}");
    let status = cluster.status();
    let workers = cluster.scheduler().workers();
    eprintln!(
        "walltime stream: {} tasks, {} jobs submitted, {} workers",
        ids.len(),
        status.submitted,
        workers.len()
    );
    assert!(
        status.submitted >= 8,
        "every first job was replaced before its time limit: {status:?}"
    );
    assert!(
        most_taking <= 8,
        "replacements never pile up: {most_taking}"
    );
    // Whenever a worker left for its time limit, four others were there.
    let leavers: Vec<_> = workers
        .iter()
        .filter(|w| {
            w.exit_reason
                .as_deref()
                .is_some_and(|r| r.contains("time limit"))
        })
        .collect();
    assert!(
        leavers.len() >= 4,
        "the first workers left for the limit: {workers:?}"
    );
    for w in &leavers {
        let left = w.exited_at_ms.unwrap();
        let others = workers
            .iter()
            .filter(|o| o.id != w.id && o.registered_at_ms <= left)
            .filter(|o| o.exited_at_ms.is_none_or(|t| t > left))
            .count();
        assert!(
            others >= 4,
            "when {} left, only {others} other workers were registered: {workers:?}",
            w.id
        );
    }

    cluster.close().await.unwrap();
    let states = final_states(jobs.iter().copied(), Duration::from_secs(60)).await;
    assert!(jobs.len() >= 8, "{states:?}");
    assert!(
        states.iter().all(|(_, s)| s == "COMPLETED"),
        "every job ends COMPLETED, none TIMEOUT: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_has_its_jobs_replaced_on_the_other_and_tasks_finish() {
    let Some(slurm) = local_slurm("a_dead_node_has_its_jobs_replaced") else {
        return;
    };
    let _serial = exclusive().await;
    fast_heartbeats();
    let logs = log_dir();

    // A filler holds 12 of node1's 16 cores, so 4 jobs of 2 cores spread
    // over both nodes.
    let filler = slurm_cmd(
        "sbatch",
        &[
            "--parsable",
            "-J",
            &unique("drover-filler"),
            "-w",
            "node1",
            "-c",
            "12",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 600",
        ],
    );
    let filler: u64 = filler.trim().split(';').next().unwrap().parse().unwrap();
    let _filler_guard = CancelOnDrop(JobId::new(filler));
    common::wait_for_state(JobId::new(filler), "RUNNING", Duration::from_secs(30)).await;

    let cluster = common::running_pool(test_job("drover-nodefail", 2, logs.path()), slurm, 4).await;
    let on_node2: Vec<String> = cluster
        .status()
        .jobs
        .iter()
        .filter(|j| j.node.as_deref() == Some("node2"))
        .map(|j| j.job.to_string())
        .collect();
    assert!(
        on_node2.len() >= 2,
        "the pool spreads over both nodes: {:?}",
        cluster.status().jobs
    );

    // Eight 20-second tasks: every worker runs some when node2 dies.
    let client = cluster.client();
    let tasks: Vec<TaskSpec> = (0..8).map(|i| sleep_task(20, i)).collect();
    let ids = client.submit(&tasks).await.unwrap();
    let start = Instant::now();
    while cluster.scheduler().task_demand(None).cores > 0
        && cluster
            .scheduler()
            .workers()
            .iter()
            .any(|w| w.running_tasks == 0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "tasks never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    slurm_cmd("scancel", &[&filler.to_string()]);

    let _revive = ReviveNode(2);
    common::local_cluster(&["kill-node", "2"]);

    let done = tokio::time::timeout(
        Duration::from_secs(150),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .expect("the tasks finish within 150 s of the node's death")
    .unwrap();
    let failed: Vec<_> = done
        .iter()
        .filter(|t| t.state != TaskState::Succeeded)
        .collect();
    assert!(failed.is_empty(), "every task succeeds: {failed:?}");

    // The pool is back to 4 workers, every one of them on node1.
    let start = Instant::now();
    loop {
        let status = cluster.status();
        let running_on_node1 = status
            .jobs
            .iter()
            .filter(|j| {
                j.state == JobState::Running
                    && j.node.as_deref() == Some("node1")
                    && j.workers.iter().any(|w| w.state == WorkerState::Running)
            })
            .count();
        if running_on_node1 == 4 && taking_tasks(&cluster) == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pool did not come back on node1: {:?}",
            status.jobs
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = cluster.status();
    assert!(
        status.submitted >= 4 + on_node2.len() as u64,
        "node2's jobs were replaced: {status:?}"
    );
    let _ = cluster.close().await;
}
