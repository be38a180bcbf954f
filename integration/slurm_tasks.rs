//! Tasks on a pool of workers on the real local Slurm: the seed graph,
//! failure spreading, a killed worker's tasks run again, and task arrays.

mod common;

use std::time::{Duration, Instant};

use common::{exclusive, local_slurm, log_dir, slurm_cmd, test_job};
use drover::cluster::SlurmCluster;
use drover::tasks::graph::Graph;
use drover::tasks::{TaskSpec, TaskState};

async fn pool(
    prefix: &str,
    workers: usize,
    cores: u32,
    logs: &std::path::Path,
    slurm: common::TestSlurm,
) -> SlurmCluster {
    common::running_pool(test_job(prefix, cores, logs), slurm, workers).await
}

fn graph(path: &str) -> Vec<TaskSpec> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    Graph::load(&file).unwrap().specs().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_graph_gives_50_and_a_failure_fails_only_its_dependents() {
    let Some(slurm) = local_slurm("the_seed_graph_gives_50") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    // 16 cores a worker: one per node. (Which worker runs what is the
    // scheduler's choice: one worker with free cores may take every ready task.)
    let cluster = pool("drover-seed", 2, 16, logs.path(), slurm).await;
    let client = cluster.client();
    let ids = client
        .submit(&graph("examples/seed-graph.toml"))
        .await
        .unwrap();
    let done = client
        .wait_tasks(Some(&ids), Duration::from_millis(50))
        .await
        .unwrap();
    let total = done
        .iter()
        .find(|t| t.name.as_deref() == Some("total"))
        .unwrap();
    assert_eq!(total.state, TaskState::Succeeded, "{total:?}");
    assert_eq!(total.output.as_ref().unwrap().stdout.trim(), "50");

    // A failing task fails what depends on it, and nothing else.
    let mut broken = graph("examples/seed-graph.toml");
    let double3 = broken
        .iter_mut()
        .find(|t| t.name.as_deref() == Some("double-3"))
        .unwrap();
    double3.argv = vec!["sh".into(), "-c".into(), "echo broken >&2; exit 4".into()];
    let ids = client.submit(&broken).await.unwrap();
    let done = client
        .wait_tasks(Some(&ids), Duration::from_millis(50))
        .await
        .unwrap();
    for t in &done {
        let name = t.name.as_deref().unwrap();
        match name {
            "double-3" => {
                assert_eq!(t.state, TaskState::Failed);
                assert_eq!(t.reason.as_deref(), Some("exit code 4"));
                assert!(t.output.as_ref().unwrap().stderr_tail.contains("broken"));
            }
            "add-3" | "total" => {
                assert_eq!(t.state, TaskState::Failed, "{name}");
                assert_eq!(t.attempts, 0, "{name} must not run");
                assert!(
                    t.reason.as_deref().unwrap().starts_with("dependency "),
                    "{t:?}"
                );
            }
            _ => assert_eq!(t.state, TaskState::Succeeded, "{name}: {t:?}"),
        }
    }
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_busy_workers_job_runs_its_tasks_again_elsewhere_once() {
    let Some(slurm) = local_slurm("killing_a_busy_workers_job") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let marks = logs.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let cluster = pool("drover-kill", 2, 2, logs.path(), slurm).await;
    let client = cluster.client();
    // Each task records its start, waits for the test's release (so that
    // none can finish before its job is killed, however far apart the two
    // workers started), then records its end; 4 tasks fill the 2 workers'
    // 4 cores.
    let release = marks.join("release");
    let tasks: Vec<TaskSpec> = (0..4)
        .map(|i| TaskSpec {
            name: Some(format!("slow-{i}")),
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo $$ >> {m}/start-{i}; n=0; while [ ! -e {r} ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done; echo done >> {m}/end-{i}; echo {i}",
                    m = marks.display(),
                    r = release.display()
                ),
            ],
            cores: 1,
            ..Default::default()
        })
        .collect();
    let ids = client.submit(&tasks).await.unwrap();
    let until = |what: &'static str, ok: fn(&[drover::tasks::TaskInfo]) -> bool| {
        let client = client.clone();
        let ids = ids.clone();
        async move {
            let start = Instant::now();
            loop {
                let list = client.tasks(Some(&ids), false).await.unwrap();
                if ok(&list.tasks) {
                    return;
                }
                assert!(start.elapsed() < Duration::from_secs(60), "{what}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Wait until every task runs, then kill the job of one busy worker.
    until("tasks did not start", |t| {
        t.iter().all(|t| t.state == TaskState::Running)
    })
    .await;
    let status = cluster.status();
    let victim = status.jobs.iter().find(|j| !j.workers.is_empty()).unwrap();
    slurm_cmd("scancel", &[&victim.job.to_string()]);
    // Its tasks go back to the queue once its agent has left (its tasks
    // killed); only then may the tasks finish.
    until("the killed worker's tasks were not run again", |t| {
        t.iter().any(|t| t.attempts == 2)
    })
    .await;
    std::fs::write(&release, "").unwrap();
    let done = client
        .wait_tasks(Some(&ids), Duration::from_millis(100))
        .await
        .unwrap();
    let victim_worker = victim.workers[0].id;
    let mut rerun = 0;
    for (i, t) in done.iter().enumerate() {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert_eq!(t.output.as_ref().unwrap().stdout.trim(), i.to_string());
        let ends = std::fs::read_to_string(marks.join(format!("end-{i}"))).unwrap();
        assert_eq!(
            ends.lines().count(),
            1,
            "task {i} ran to completion exactly once"
        );
        if t.attempts == 2 {
            rerun += 1;
            assert_ne!(
                t.worker,
                Some(victim_worker),
                "a rerun goes elsewhere: {t:?}"
            );
        }
    }
    // The killed worker's tasks that had not finished ran again elsewhere.
    assert!(rerun >= 1, "no task ran again: {done:?}");
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_array_tasks_complete_with_their_own_outputs() {
    let Some(slurm) = local_slurm("ten_thousand_array_tasks") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let cluster = pool("drover-array", 2, 16, logs.path(), slurm).await;
    let file = cluster.scheduler_file().to_path_buf();
    let out = common::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["submit", "--array", "0-9999", "--scheduler-file"])
            .arg(&file)
            .args(["--", "echo", "task {{index}}"]),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("submitted 10000 tasks"));
    let client = cluster.client();
    let done = client
        .wait_tasks(None, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(done.len(), 10_000);
    for (i, t) in done.iter().enumerate() {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert_eq!(t.output.as_ref().unwrap().stdout, format!("task {i}\n"));
    }
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_ask_for_memory_share_a_worker_only_as_far_as_its_memory_goes() {
    let Some(slurm) = local_slurm("tasks_that_ask_for_memory") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    // One worker of 4 cores and 1 GiB: four 1-core tasks would run at once,
    // but tasks of 600 MiB each take their turns.
    let job = test_job("drover-memory", 4, logs.path())
        .memory("1GiB".parse::<drover::config::Memory>().unwrap());
    let cluster = common::running_pool(job, slurm, 1).await;
    let file = cluster.scheduler_file().to_path_buf();
    let submit = |memory: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "submit",
                "--memory",
                memory,
                "--array",
                "0-3",
                "--scheduler-file",
            ])
            .arg(&file)
            .args(["--", "sh", "-c", "date +%s%N; sleep 0.3; date +%s%N"])
            .output()
            .unwrap()
    };
    let out = submit("600MiB");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // More than any worker has: refused at submission, with why.
    let refused = submit("2GiB");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("2GiB of memory, but the pool's workers have 1GiB"),
        "{said}"
    );
    let done = cluster
        .client()
        .wait_tasks(None, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(done.len(), 4, "only the first submission was taken");
    let mut spans: Vec<(u128, u128)> = done
        .iter()
        .map(|t| {
            assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
            let out = &t.output.as_ref().unwrap().stdout;
            let mut times = out.lines().map(|l| l.trim().parse::<u128>().unwrap());
            (times.next().unwrap(), times.next().unwrap())
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two 600 MiB tasks overlapped: {spans:?}"
        );
    }
    cluster.close().await.unwrap();
}
