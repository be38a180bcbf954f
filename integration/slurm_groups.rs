//! Pools with groups on the real local Slurm: a small CPU group on `batch`
//! beside a big-memory group on the `big` partition, each growing with the
//! work only it should take and shrinking when idle; a GPU group whose
//! workers get the stand-in GPUs; and a pool with groups from a
//! `drover.toml`, scaled group by group from the command line.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{exclusive, local_slurm, log_dir, test_cluster_options, test_job};
use drover::cluster::{Group, SlurmCluster};
use drover::config::Memory;
use drover::protocol::{TaskSpec, WorkerId};
use drover::tasks::TaskState;

fn group(name: &str, job: drover::config::JobOptions) -> Group {
    Group {
        name: name.into(),
        spec: job.build().unwrap(),
    }
}

fn task(script: &str, memory: Option<&str>, gpus: u32) -> TaskSpec {
    TaskSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        memory_bytes: memory.map(|m| m.parse::<Memory>().unwrap().bytes()),
        gpus,
        ..TaskSpec::default()
    }
}

/// Each worker's group, as it registered.
fn groups_of(cluster: &SlurmCluster) -> BTreeMap<WorkerId, String> {
    cluster
        .scheduler()
        .workers()
        .into_iter()
        .map(|w| (w.id, w.offer.group.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_tasks_go_to_the_big_group_and_each_group_grows_and_shrinks_on_its_own() {
    let Some(slurm) = local_slurm("groups_grow_and_shrink") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let small =
        test_job("drover-small", 1, logs.path()).memory("512MiB".parse::<Memory>().unwrap());
    let big = test_job("drover-big", 2, logs.path())
        .queue("big")
        .memory("8GiB".parse::<Memory>().unwrap());
    let mut options = test_cluster_options();
    options.idle_timeout = Duration::from_secs(3);
    options.cooldown = Duration::from_secs(1);
    let groups = vec![group("small", small), group("big", big)];
    let cluster = SlurmCluster::with_groups(groups, options, slurm)
        .await
        .unwrap();
    cluster.adapt_group("small", 0, 4).unwrap();
    cluster.adapt_group("big", 0, 2).unwrap();
    let mut specs: Vec<TaskSpec> = (0..200).map(|_| task("sleep 0.05", None, 0)).collect();
    specs.extend((0..10).map(|_| task("sleep 0.5", Some("3GiB"), 0)));
    let client = cluster.client();
    let ids = client.submit(&specs).await.unwrap();
    // Watch both groups' targets while the work runs.
    let mut peak: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeMap::new();
    let done = loop {
        for g in cluster.status().groups {
            let p = peak.entry(g.group.clone().unwrap()).or_default();
            *p = (*p).max(g.target_jobs);
        }
        seen.extend(groups_of(&cluster));
        let list = client.tasks(Some(&ids), false).await.unwrap().tasks;
        if list.iter().all(|t| t.state.is_final()) {
            break list;
        }
        cluster.rounds(1).await;
    };
    seen.extend(groups_of(&cluster));
    assert!(
        peak["small"] >= 1 && peak["big"] >= 1,
        "both grew: {peak:?}"
    );
    let mut small_ran_on = BTreeSet::new();
    for (i, t) in done.iter().enumerate() {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        let group = &seen[&t.worker.unwrap()];
        match i < 200 {
            true => small_ran_on.insert(group.clone()),
            false => {
                assert_eq!(group, "big", "a 3 GiB task ran on a {group} worker");
                true
            }
        };
    }
    assert!(small_ran_on.contains("small"), "{small_ran_on:?}");
    // Idle, both shrink back to nothing on their own.
    common::until("both groups shrink to 0", Duration::from_secs(60), || {
        let s = cluster.status();
        s.groups.iter().all(|g| g.target_jobs == 0) && s.registered == 0
    })
    .await;
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_tasks_run_only_on_the_gpu_groups_workers() {
    let Some(slurm) = local_slurm("gpu_group") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let cpu = test_job("drover-cpu", 2, logs.path()).queue("small");
    let gpu = test_job("drover-gpu", 2, logs.path())
        .queue("big")
        .gres("gpu:2");
    let groups = vec![group("cpu", cpu), group("gpu", gpu)];
    let cluster = SlurmCluster::with_groups(groups, test_cluster_options(), slurm)
        .await
        .unwrap();
    cluster.scale_group("cpu", 1).unwrap();
    cluster.scale_group("gpu", 1).unwrap();
    cluster
        .wait_for_workers(2, Duration::from_secs(60))
        .await
        .unwrap();
    let script = "echo \"$CUDA_VISIBLE_DEVICES\"; sleep 0.3";
    let mut specs: Vec<TaskSpec> = (0..4).map(|_| task(script, None, 1)).collect();
    specs.extend((0..4).map(|_| task(script, None, 0)));
    let client = cluster.client();
    let ids = client.submit(&specs).await.unwrap();
    let done = common::all_succeed(&client, &ids).await;
    let groups = groups_of(&cluster);
    for t in &done[..4] {
        let device = t.output.as_ref().unwrap().stdout.trim().to_string();
        assert_eq!(groups[&t.worker.unwrap()], "gpu", "{t:?}");
        assert!(device == "0" || device == "1", "its own device: {device:?}");
    }
    // The cpu group's worker has no GPU, and says so.
    let cpu_worker = cluster
        .scheduler()
        .workers()
        .into_iter()
        .find(|w| w.offer.group.as_deref() == Some("cpu"))
        .unwrap();
    assert!(cpu_worker.offer.gpus.is_empty(), "{cpu_worker:?}");
    cluster.close().await.unwrap();
}

/// A pool with groups from `drover.toml`: `cluster up --config` brings up
/// every group, `status` shows them, tasks asking for a resource only one
/// group has run there, and `scale` takes a group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_from_a_config_file_come_up_and_scale_one_by_one() {
    if local_slurm("groups_from_config").is_none() {
        return;
    }
    let _serial = exclusive().await;
    let logs = log_dir();
    let file = logs.path().join("pool.scheduler.json");
    let config = logs.path().join("drover.toml");
    let name = common::unique("drover-cfg");
    std::fs::write(
        &config,
        format!(
            r#"
[job]
cores = 1
interface = "ib0"
job-name = "{name}"
log-directory = "{logs}"
death-timeout = "10"
drover-bin = "{bin}"

[pool]
scheduler-interface = "{bridge}"
poll-interval = "0.3s"

[group.small]
workers = 2

[group.big]
queue = "big"
memory = "2GiB"
worker-resources = ["licence=1"]
workers = 1
"#,
            logs = logs.path().display(),
            bin = env!("CARGO_BIN_EXE_drover"),
            bridge = common::bridge(),
        ),
    )
    .unwrap();
    let drover = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(args)
            .env("SLURM_CONF", common::slurm_conf())
            .env("DROVER_USER_CONFIG", "/dev/null")
            .env("DROVER_SCHEDULER_FILE", &file)
            .output()
            .unwrap()
    };
    let config_arg = config.display().to_string();
    let file_arg = file.display().to_string();
    let up = drover(&[
        "--config",
        &config_arg,
        "cluster",
        "up",
        "--detach",
        "--scheduler-file",
        &file_arg,
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let out = drover(&["status", "--json"]);
    let status: drover::protocol::ClusterStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status.registered, 3, "{status:#?}");
    let sizes: Vec<(Option<String>, usize)> = status
        .groups
        .iter()
        .map(|g| (g.group.clone(), g.target_workers))
        .collect();
    assert_eq!(sizes, [(Some("small".into()), 2), (Some("big".into()), 1)]);
    let text = String::from_utf8_lossy(&drover(&["status"]).stdout).to_string();
    assert!(
        text.contains("group big: 1 of 1 workers registered"),
        "{text}"
    );
    // Only the big group's worker has the licence; it runs in `big`.
    let ran = drover(&[
        "submit",
        "--resource",
        "licence=1",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo $SLURM_JOB_PARTITION",
    ]);
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success() && said.contains("big"), "{said}");
    let refused = drover(&["submit", "--resource", "licence=2", "--", "true"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // `scale` must name a group of this pool.
    let unnamed = drover(&["scale", "3"]);
    let why = String::from_utf8_lossy(&unnamed.stderr);
    assert_eq!(unnamed.status.code(), Some(2), "{why}");
    assert!(why.contains("small, big"), "{why}");
    let scaled = drover(&["scale", "--group", "small", "1"]);
    assert!(
        scaled.status.success(),
        "{}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    let client = drover::client::SchedulerClient::from_path(&file).unwrap();
    common::until("small down to 1", Duration::from_secs(60), || {
        let s = run_now(client.cluster());
        s.groups[0].target_workers == 1 && s.registered == 2
    })
    .await;
    let closed = drover(&["close"]);
    assert!(
        closed.status.success(),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    for g in &status.groups {
        assert!(common::jobs_named(&g.job_name).is_empty(), "{}", g.job_name);
    }
}

/// Runs a client call to its end from a synchronous check.
fn run_now<T>(f: impl std::future::Future<Output = Result<T, drover::client::ClientError>>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).unwrap()
}

/// A group of 2-node jobs: one allocation, an agent per node started with
/// `srun`, each registering on its own; killing one node's agent requeues
/// only the tasks it ran, and scaling down ends the whole job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_job_runs_an_agent_per_node_and_a_lost_node_requeues_only_its_tasks() {
    let Some(slurm) = local_slurm("two_node_jobs") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let wide = test_job("drover-wide", 2, logs.path()).nodes(2u32);
    let mut options = test_cluster_options();
    options.scheduler.heartbeat_interval = Duration::from_millis(500);
    let cluster = SlurmCluster::with_groups(vec![group("wide", wide)], options, slurm)
        .await
        .unwrap();
    cluster.scale_group("wide", 2).unwrap();
    cluster
        .wait_for_workers(2, Duration::from_secs(60))
        .await
        .unwrap();
    let status = cluster.status();
    assert_eq!(status.jobs.len(), 1, "two workers, one job: {status:#?}");
    let workers = cluster.scheduler().workers();
    let hosts: BTreeSet<&str> = workers.iter().map(|w| w.hostname.as_str()).collect();
    assert_eq!(hosts, BTreeSet::from(["node1", "node2"]));
    assert_eq!(workers[0].slurm.job_id, workers[1].slurm.job_id);
    // Four 1-core tasks fill both workers' 2 cores.
    let client = cluster.client();
    let ids = client
        .submit(
            &(0..4)
                .map(|_| task("sleep 2; hostname", None, 0))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let running = |list: &[drover::tasks::TaskInfo]| {
        list.iter()
            .filter(|t| t.state == TaskState::Running)
            .count()
    };
    loop {
        let list = client.tasks(Some(&ids), false).await.unwrap().tasks;
        if running(&list) == 4 {
            break;
        }
        cluster.rounds(1).await;
    }
    let survivor = workers.iter().find(|w| w.hostname == "node1").unwrap().id;
    let file = cluster.scheduler_file().display().to_string();
    let victim = agent_on("node2", &file);
    std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    let done = common::all_succeed(&client, &ids).await;
    for t in &done {
        match t.attempts {
            1 => {}
            2 => assert_eq!(
                t.worker,
                Some(survivor),
                "requeued onto the live node: {t:?}"
            ),
            n => panic!("ran {n} times: {t:?}"),
        }
    }
    let again = done.iter().filter(|t| t.attempts == 2).count();
    assert_eq!(
        again, 2,
        "only the killed agent's two tasks ran again: {done:#?}"
    );
    let live = cluster.scheduler().live_workers();
    assert_eq!(live, 1, "node1's agent goes on");
    // Scaling down ends the job, both nodes at once.
    let name = cluster.status().groups[0].job_name.clone();
    cluster.scale_group("wide", 0).unwrap();
    common::until("the job gone", Duration::from_secs(60), || {
        common::jobs_named(&name).is_empty()
    })
    .await;
    cluster.close().await.unwrap();
}

/// The pid of the agent on `node` (its network namespace) of the pool
/// whose scheduler file is `file`.
fn agent_on(node: &str, file: &str) -> u32 {
    let pids = common::slurm_cmd("ip", &["netns", "pids", &format!("drover-{node}")]);
    pids.lines()
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            words.contains(&b"worker".as_slice())
                && words.contains(&file.as_bytes())
                && !words.contains(&b"srun".as_slice())
        })
        .unwrap_or_else(|| panic!("no agent of {file} on {node}: {pids}"))
}

/// Memory as Slurm enforces it (task/cgroup): a task that asked for 300
/// MiB but needs 900 runs first on the only worker there is, a 512 MiB
/// job, and the kernel kills it for memory. The worker reports it so;
/// the task asks for twice as much (600 MiB, which only the big group's
/// 2 GiB workers can hold), using none of its retries, and runs there to
/// its end. The small worker's job, once it ends, is OUT_OF_MEMORY, as
/// Slurm says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_for_memory_runs_again_asking_for_more_on_a_bigger_worker() {
    let Some(slurm) = local_slurm("task_killed_for_memory") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let small =
        test_job("drover-oom-small", 1, logs.path()).memory("512MiB".parse::<Memory>().unwrap());
    let big = test_job("drover-oom-big", 1, logs.path())
        .queue("big")
        .memory("2GiB".parse::<Memory>().unwrap());
    let groups = vec![group("small", small), group("big", big)];
    let cluster = SlurmCluster::with_groups(groups, test_cluster_options(), slurm)
        .await
        .unwrap();
    cluster.scale_group("small", 1).unwrap();
    cluster
        .wait_for_workers(1, Duration::from_secs(60))
        .await
        .unwrap();
    let hungry = "python3 -c 'import time; a = b\"x\" * (900 << 20); time.sleep(0.5)' && echo fits";
    let client = cluster.client();
    let ids = client
        .submit(&[task(hungry, Some("300MiB"), 0)])
        .await
        .unwrap();
    let info = || async { client.tasks(Some(&ids), false).await.unwrap().tasks[0].clone() };
    let start = std::time::Instant::now();
    while info().await.grown == 0 {
        let t = info().await;
        assert!(
            t.state != TaskState::Failed,
            "failed instead of growing: {t:#?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never killed: {t:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let killed = info().await;
    assert_eq!(killed.state, TaskState::Ready, "{killed:#?}");
    let reason = killed.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("killed for memory") && reason.contains("600MiB"),
        "{reason}"
    );
    let small_job = cluster.status().jobs[0]
        .job_id
        .expect("the small worker's job id");
    cluster.scale_group("big", 1).unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .expect("the task ran on a big worker")
    .unwrap();
    let t = &done[0];
    assert_eq!(
        (t.state, t.attempts, t.grown),
        (TaskState::Succeeded, 2, 1),
        "{t:#?}"
    );
    assert_eq!(t.output.as_ref().unwrap().stdout.trim(), "fits");
    assert_eq!(groups_of(&cluster)[&t.worker.unwrap()], "big");
    cluster.close().await.unwrap();
    let states = common::final_states([small_job.get()], Duration::from_secs(60)).await;
    assert_eq!(states[0].1, "OUT_OF_MEMORY", "{states:?}");
}
