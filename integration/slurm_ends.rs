//! Jobs that end, or stall, for a reason of Slurm's (issue 32), on the
//! local Slurm: a job Slurm holds after its launch failed is released by
//! the pool and starts; a pool on the preemptible `scavenger` partition is
//! preempted by a job of `urgent` and recovers; a job that ended
//! OUT_OF_MEMORY makes the next one ask for more; accounting tells a
//! TIMEOUT and a NODE_FAIL as Slurm reports them; with `PreemptMode=CANCEL`
//! a preempted job ends PREEMPTED and is replaced. Slow (Slurm lets a
//! requeued job start only once its credential has expired: 120 s by
//! default, 20 s on the local cluster, `AuthInfo=cred_expire=20`), so they
//! run one at a time on this machine's 22.05 over its commands only; the fast form of the first, a replacement, is
//! `slurm_site`'s on every release and both backends.

mod common;

use std::time::Duration;

use common::{
    accounting_on, appended, exclusive, local_slurm, log_dir, running_pool, show_job, slurm_cmd,
    test_cluster_options, test_job, wait_for_state, FailingProlog,
};
use drover::cluster::{Group, SlurmCluster};
use drover::config::HeldJobs;
use drover::slurm::{JobId, JobRef, JobState};
use drover::tasks::{TaskSpec, TaskState};

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
    // The prolog fails the first job to start, whoever's.
    let _whole = exclusive().await;
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
    // Slurm's requeue delay (the credential's lifetime, 20 s here) comes first.
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

/// A pool of two workers on `scavenger`, each running a task, is preempted
/// by a job of `urgent` that takes every node: Slurm sends its workers
/// SIGTERM and requeues their jobs. The tasks go back to the queue at once
/// as stopped (no retry used: they have none), the jobs keep their places
/// (nothing is submitted for them), the pool counts the preemptions, and
/// once Slurm lets the jobs start again their workers come back and run
/// each task to its end exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preempted_pool_requeues_its_tasks_without_using_retries_and_recovers() {
    let Some(slurm) = local_slurm("a_preempted_pool_requeues_its_tasks") else {
        return;
    };
    let _whole = exclusive().await;
    let logs = log_dir();
    let spec = test_job("drover-preempt", 1, logs.path()).queue("scavenger");
    let cluster = running_pool(spec, slurm, 2).await;
    let client = cluster.client();
    let (go, ran) = (logs.path().join("go"), logs.path().join("ran"));
    // Each task waits for the test's word (so both are running when the
    // urgent job comes), then records that it ran to its end.
    let tasks: Vec<TaskSpec> = (0..2)
        .map(|i| TaskSpec {
            name: Some(format!("long-{i}")),
            argv: vec!["sh".into(), "-c".into(), format!(
                "n=0; while [ ! -e {go} ] && [ $n -lt 6000 ]; do sleep 0.1; n=$((n+1)); done; [ -e {go} ] || exit 3; echo \"$DROVER_TASK_ID\" >> {ran}",
                go = go.display(), ran = ran.display()
            )],
            ..Default::default()
        })
        .collect();
    let ids = client.submit(&tasks).await.unwrap();
    let states = || async { client.tasks(Some(&ids), false).await.unwrap().tasks };
    let start = std::time::Instant::now();
    while !states().await.iter().all(|t| t.state == TaskState::Running) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tasks did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before: Vec<JobRef> = cluster.status().jobs.iter().map(|j| j.job).collect();
    let urgent = common::urgent_job_on_every_node(5);
    common::until(
        "the pool saw both jobs requeued",
        Duration::from_secs(120),
        || {
            let s = cluster.status();
            s.preemptions == 2 && s.jobs.iter().all(|j| j.requeues == 1)
        },
    )
    .await;
    let stopped = states().await;
    assert!(
        stopped
            .iter()
            .all(|t| t.state == TaskState::Ready && t.stopped == 1 && t.lost == 0),
        "stopped by Slurm and queued again, not failed: {stopped:#?}"
    );
    wait_for_state(urgent, "COMPLETED", Duration::from_secs(120)).await;
    std::fs::write(&go, "").unwrap();
    // Slurm lets a requeued job start once its credential expired (21 s).
    let done = tokio::time::timeout(
        Duration::from_secs(300),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .unwrap_or_else(|_| panic!("tasks not done: {:#?}", cluster.status().jobs))
    .unwrap();
    for t in &done {
        assert_eq!(
            (t.state, t.attempts, t.stopped, t.lost),
            (TaskState::Succeeded, 2, 1, 0),
            "{t:#?}"
        );
    }
    let mut ran = appended(&ran);
    ran.sort_unstable();
    assert_eq!(
        ran,
        ids.iter().map(|i| i.0).collect::<Vec<_>>(),
        "each ran to its end once"
    );
    let status = cluster.status();
    assert_eq!(
        status.submitted, 2,
        "requeued jobs keep their places: {:#?}",
        status.jobs
    );
    let after: Vec<JobRef> = status.jobs.iter().map(|j| j.job).collect();
    assert_eq!(after, before);
    assert_eq!(status.registered, 2, "the pool recovered");
    if accounting_on() {
        for job in &after {
            let runs = slurm_cmd(
                "sacct",
                &[
                    "-n",
                    "-D",
                    "-X",
                    "-P",
                    "-o",
                    "State",
                    "-j",
                    &job.to_string(),
                ],
            );
            assert!(
                runs.lines().any(|l| l.trim() == "PREEMPTED"),
                "sacct of {job}: {runs}"
            );
        }
    }
    cluster.close().await.unwrap();
}

/// A pool whose cheap group (on `scavenger`) is preempted more often than
/// it tolerates (here: at all) passes its work to its next group (on
/// `batch`, never preempted): while the cheap group's jobs wait out
/// Slurm's requeue delay, the safe group grows and runs the tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_preempted_too_often_spills_its_work_to_the_next_group() {
    let Some(slurm) = local_slurm("a_group_preempted_too_often_spills") else {
        return;
    };
    let _whole = exclusive().await;
    let logs = log_dir();
    let group = |name: &str, queue: &str| Group {
        name: name.into(),
        spec: test_job(&format!("drover-{name}"), 1, logs.path())
            .queue(queue)
            .build()
            .unwrap(),
    };
    let mut options = test_cluster_options();
    options.preemptions_tolerated = 0;
    options.cooldown = Duration::from_secs(1);
    options.idle_timeout = Duration::from_secs(600);
    let groups = vec![group("cheap", "scavenger"), group("safe", "batch")];
    let cluster = SlurmCluster::with_groups(groups, options, slurm)
        .await
        .unwrap();
    cluster.adapt_group("cheap", 0, 2).unwrap();
    cluster.adapt_group("safe", 0, 2).unwrap();
    let client = cluster.client();
    let go = logs.path().join("go");
    let tasks: Vec<TaskSpec> = (0..2)
        .map(|_| TaskSpec {
            argv: vec!["sh".into(), "-c".into(), format!(
                "n=0; while [ ! -e {go} ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done; [ -e {go} ]",
                go = go.display()
            )],
            ..Default::default()
        })
        .collect();
    let ids = client.submit(&tasks).await.unwrap();
    let group_of = |w| -> String {
        let workers = cluster.scheduler().workers();
        let w = workers
            .iter()
            .find(|x| Some(x.id) == w)
            .expect("a known worker");
        w.offer.group.clone().unwrap_or_default()
    };
    let start = std::time::Instant::now();
    loop {
        let list = client.tasks(Some(&ids), false).await.unwrap().tasks;
        if list.iter().all(|t| t.state == TaskState::Running) {
            assert!(
                list.iter().all(|t| group_of(t.worker) == "cheap"),
                "the cheap group, declared first, takes them"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "tasks did not start: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let urgent = common::urgent_job_on_every_node(3);
    common::until(
        "the cheap group's jobs were preempted",
        Duration::from_secs(120),
        || cluster.status().preemptions == 2,
    )
    .await;
    let preempted = std::time::Instant::now();
    wait_for_state(urgent, "COMPLETED", Duration::from_secs(60)).await;
    std::fs::write(&go, "").unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(100),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not done before the cheap jobs could start again: {:#?}",
            cluster.status().jobs
        )
    })
    .unwrap();
    for t in &done {
        assert_eq!((t.state, t.stopped), (TaskState::Succeeded, 1), "{t:#?}");
        assert_eq!(group_of(t.worker), "safe", "{t:#?}");
    }
    assert!(
        preempted.elapsed() < Duration::from_secs(115),
        "done by the safe group while the cheap jobs waited out Slurm's requeue delay"
    );
    let status = cluster.status();
    let cheap = status
        .groups
        .iter()
        .find(|g| g.group.as_deref() == Some("cheap"))
        .unwrap();
    assert_eq!(cheap.recent_preemptions, 2, "{cheap:#?}");
    cluster.close().await.unwrap();
}

/// With `PreemptMode=CANCEL` on `scavenger` (`slurm/local-cluster set`,
/// put back after), a preempted job ends PREEMPTED instead of going back
/// to the queue: the pool counts the preemption but no failure, and
/// replaces the job; the task it ran goes back to the queue as stopped,
/// using none of its retries (it has none), and runs to its end on the
/// replacement once the urgent job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_preempt_mode_cancel_a_preempted_job_ends_preempted_and_is_replaced() {
    let Some(slurm) = local_slurm("with_preempt_mode_cancel") else {
        return;
    };
    let _whole = exclusive().await;
    common::local_cluster(&["set", "PreemptMode=CANCEL"]);
    let _reset = ResetOverrides;
    let logs = log_dir();
    let spec = test_job("drover-preempt-cancel", 1, logs.path()).queue("scavenger");
    let cluster = running_pool(spec, slurm, 1).await;
    let first = cluster.status().jobs[0].job_id.expect("a job id");
    let client = cluster.client();
    let go = logs.path().join("go");
    let task = TaskSpec {
        argv: vec!["sh".into(), "-c".into(), format!(
            "n=0; while [ ! -e {go} ] && [ $n -lt 6000 ]; do sleep 0.1; n=$((n+1)); done; [ -e {go} ]",
            go = go.display()
        )],
        ..Default::default()
    };
    let ids = client.submit(&[task]).await.unwrap();
    let state = || async { client.tasks(Some(&ids), false).await.unwrap().tasks[0].clone() };
    let start = std::time::Instant::now();
    while state().await.state != TaskState::Running {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the task did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let urgent = common::urgent_job_on_every_node(5);
    common::until("the job ended PREEMPTED", Duration::from_secs(120), || {
        let s = cluster.status();
        s.preemptions == 1
            && s.jobs
                .iter()
                .any(|j| j.job_id == Some(first) && j.state == JobState::Preempted)
    })
    .await;
    let stopped = state().await;
    assert_eq!(
        (stopped.state, stopped.stopped, stopped.lost),
        (TaskState::Ready, 1, 0),
        "{stopped:#?}"
    );
    wait_for_state(urgent, "COMPLETED", Duration::from_secs(120)).await;
    std::fs::write(&go, "").unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .unwrap_or_else(|_| panic!("the task did not finish: {:#?}", cluster.status().jobs))
    .unwrap();
    assert_eq!(
        (done[0].state, done[0].attempts, done[0].stopped),
        (TaskState::Succeeded, 2, 1),
        "{:#?}",
        done[0]
    );
    let status = cluster.status();
    assert_eq!(status.submitted, 2, "replaced once: {:#?}", status.jobs);
    assert!(status.failures.is_empty(), "{:?}", status.failures);
    cluster.close().await.unwrap();
}

/// Puts the local Slurm's `set` overrides back, however the test ends.
struct ResetOverrides;

impl Drop for ResetOverrides {
    fn drop(&mut self) {
        common::local_cluster(&["set", "--reset"]);
    }
}

/// A task that needs 400 MiB (and asked for none) in a worker job of 256
/// MiB is killed by the kernel, as Slurm's task/cgroup enforces the job's
/// memory: it fails "killed for memory". Once the pool is scaled down the
/// job ends OUT_OF_MEMORY in Slurm's words (its listing, or sacct), and
/// the pool's next job asks for twice the memory (`job-memory-growth`,
/// 2 by default), as `scontrol` shows, with `status` saying so; the same
/// task then runs there to its end. Memory is enforced on this machine's
/// 22.05 cluster only (the README's "Out of memory").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ended_out_of_memory_makes_the_next_job_ask_for_more() {
    let Some(slurm) = local_slurm("a_job_that_ended_out_of_memory") else {
        return;
    };
    let _whole = exclusive().await;
    let logs = log_dir();
    let spec = test_job("drover-oomjob", 1, logs.path())
        .memory("256MiB".parse::<drover::config::Memory>().unwrap());
    let cluster = running_pool(spec, slurm, 1).await;
    let first = cluster.status().jobs[0].job_id.expect("a job id");
    assert_eq!(show_job(first)["MinMemoryNode"], "256M");
    let client = cluster.client();
    let hungry = TaskSpec {
        argv: vec![
            "python3".into(),
            "-c".into(),
            "import time; a = b'x' * (400 << 20); time.sleep(0.5); print('fits')".into(),
        ],
        ..Default::default()
    };
    let ids = client.submit(std::slice::from_ref(&hungry)).await.unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .expect("the task ended")
    .unwrap();
    assert_eq!(done[0].state, TaskState::Failed, "{:#?}", done[0]);
    let reason = done[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("killed for memory"), "{reason}");
    cluster.scale(0);
    common::until("the pool grew its jobs", Duration::from_secs(90), || {
        cluster.status().memory_growth.is_some()
    })
    .await;
    let status = cluster.status();
    let ended = status
        .jobs
        .iter()
        .find(|j| j.job_id == Some(first))
        .unwrap();
    assert_eq!(ended.state.to_string(), "OUT_OF_MEMORY", "{ended:#?}");
    let grown = status.memory_growth.unwrap();
    assert_eq!(
        (
            grown.from.as_str(),
            grown.to.as_str(),
            grown.times,
            grown.stopped
        ),
        ("256M", "512M", 1, None)
    );
    cluster.scale(1);
    cluster
        .wait_for_workers(1, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", cluster.status().jobs));
    let next = cluster
        .status()
        .jobs
        .iter()
        .filter_map(|j| j.job_id)
        .find(|id| *id != first)
        .expect("the next job");
    assert_eq!(show_job(next)["MinMemoryNode"], "512M");
    let ids = client.submit(&[hungry]).await.unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        client.wait_tasks(Some(&ids), Duration::from_millis(200)),
    )
    .await
    .expect("the task ended")
    .unwrap();
    assert_eq!(done[0].state, TaskState::Succeeded, "{:#?}", done[0]);
    assert_eq!(done[0].output.as_ref().unwrap().stdout.trim(), "fits");
    cluster.close().await.unwrap();
}

/// Ends Slurm itself decides, as accounting records them
/// (`Slurm::fates`, one call for both): a job past its time limit ends
/// TIMEOUT, and one whose node died ends NODE_FAIL once Slurm declares the
/// node down (`SlurmdTimeout`, 20 s here; `--no-requeue`, as with
/// `JobRequeue=1` Slurm would requeue it). A pool's own job on a dead
/// node is cancelled by the pool before that (its workers are lost
/// sooner), so this case submits plain jobs; `slurm_jobs` reads FAILED,
/// COMPLETED and CANCELLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_tells_a_timeout_and_a_node_failure_as_slurm_reports_them() {
    let Some(slurm) = local_slurm("accounting_tells_a_timeout_and_a_node_failure") else {
        return;
    };
    let _whole = exclusive().await;
    let submit = |name: &str, args: &[&str]| -> JobId {
        let name = common::unique(name);
        let mut all = vec!["--parsable", "-J", &name, "-o", "/dev/null"];
        all.extend_from_slice(args);
        all.extend(["--wrap", "sleep 600"]);
        let out = slurm_cmd("sbatch", &all);
        out.trim().split(';').next().unwrap().parse().unwrap()
    };
    // Five seconds: Slurm ends it at its next look at time limits.
    let timed = submit("drover-fate-timeout", &["-t", "0:05", "-w", "node1"]);
    let _timed = common::CancelOnDrop(timed);
    let orphan = submit("drover-fate-nodefail", &["--no-requeue", "-w", "node2"]);
    let _orphan = common::CancelOnDrop(orphan);
    wait_for_state(orphan, "RUNNING", Duration::from_secs(30)).await;
    let _revive = common::ReviveNode(2);
    common::local_cluster(&["kill-node", "2"]);
    let jobs = [timed, orphan].map(JobRef::Job);
    if !accounting_on() {
        assert_eq!(slurm.fates(&jobs).await.unwrap(), None);
        return;
    }
    let start = std::time::Instant::now();
    let fates = loop {
        let fates = slurm.fates(&jobs).await.unwrap().expect("accounting");
        if fates.len() == 2 && fates.iter().all(|f| !f.state.is_active()) {
            break fates;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "Slurm did not end both: {fates:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let fate = |job: JobId| fates.iter().find(|f| f.job == JobRef::Job(job)).unwrap();
    assert_eq!(fate(timed).state, JobState::Timeout, "{fates:?}");
    assert!(
        fate(timed)
            .elapsed
            .is_some_and(|e| e >= Duration::from_secs(5)),
        "{fates:?}"
    );
    assert_eq!(fate(orphan).state, JobState::NodeFail, "{fates:?}");
    assert_eq!(fate(orphan).nodes.as_deref(), Some("node2"), "{fates:?}");
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
