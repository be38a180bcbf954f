//! A Slurm controller crash under a busy pool, on the real local Slurm:
//! slurmctld is killed with SIGKILL while workers run tasks, and started
//! again from its saved state. The pool must hold: no task lost or run
//! twice, no job submitted that the target did not need, each worker
//! counted once, and job arrays still used afterwards. Runs alone in its
//! binary: it takes the controller away from everything else.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    exclusive, local_cluster, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job,
    until,
};
use drover::cluster::SlurmCluster;
use drover::protocol::{PoolPhase, WorkerState};
use drover::slurm::{JobRef, JobState};
use drover::tasks::{TaskSpec, TaskState};

/// Starts the controller again, whatever happens in the test.
struct StartController;

impl Drop for StartController {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
        let _ = Command::new("timeout")
            .args(["90", script, "start-controller"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_crash_under_a_busy_pool_loses_nothing_and_submits_nothing_extra() {
    let Some(slurm) = local_slurm("a_controller_crash_under_a_busy_pool") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let marks = logs.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let cluster = common::running_pool(test_job("drover-outage", 1, logs.path()), slurm, 4).await;
    assert_eq!(cluster.status().submitted, 4);

    // Ten tasks of 4 s on 4 one-core workers: busy through the outage.
    let client = cluster.client();
    let tasks: Vec<TaskSpec> = (0..10)
        .map(|i| TaskSpec {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "sleep 4; echo ran >> {}/task-{i}; echo {i}",
                    marks.display()
                ),
            ],
            ..Default::default()
        })
        .collect();
    let ids = client.submit(&tasks).await.unwrap();
    until("4 tasks running", Duration::from_secs(30), || {
        cluster.scheduler().task_demand(None).cores >= 4
            && cluster
                .scheduler()
                .workers()
                .iter()
                .all(|w| w.running_tasks > 0)
    })
    .await;

    // Everything before the crash (other tests' cancellations) is saved:
    // only what this test does may be lost.
    common::controller_state_saved().await;
    let _restart = StartController;
    local_cluster(&["kill-controller"]);
    until("the outage seen", Duration::from_secs(60), || {
        matches!(cluster.status().phase, PoolPhase::SlurmUnreachable { .. })
    })
    .await;
    let down_since = Instant::now();
    // Hold the controller away for 20 s, as long as a slow restart.
    while down_since.elapsed() < Duration::from_secs(20) {
        cluster.rounds(1).await;
        let status = cluster.status();
        assert_eq!(status.submitted, 4, "nothing submitted during the outage");
        assert_eq!(status.registered, 4, "the workers are kept: {status:?}");
    }
    local_cluster(&["start-controller"]);
    until("Slurm answers again", Duration::from_secs(60), || {
        !matches!(cluster.status().phase, PoolPhase::SlurmUnreachable { .. })
    })
    .await;

    let done = client
        .wait_tasks(Some(&ids), Duration::from_millis(200))
        .await
        .unwrap();
    for (i, t) in done.iter().enumerate() {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        let runs = std::fs::read_to_string(marks.join(format!("task-{i}"))).unwrap();
        assert_eq!(runs.lines().count(), 1, "task {i} ran exactly once");
    }
    cluster.rounds(3).await;
    let status = cluster.status();
    eprintln!("after the restart: {status:#?}");
    assert_eq!(status.registered, 4, "each worker counted once: {status:?}");
    assert_eq!(
        status.submitted, 4,
        "no job submitted that the target did not need: {status:?}"
    );

    arrays_still_used(&cluster).await;
    cluster.close().await.unwrap();
    common::assert_nodes_healthy();
    common::controller_state_saved().await;
}

/// Scales from 4 to 6 workers: the 2 new ones come as one new array, and
/// nothing else is submitted.
async fn arrays_still_used(cluster: &SlurmCluster) {
    let arrays = |status: &drover::protocol::ClusterStatus| {
        status
            .jobs
            .iter()
            .filter_map(|j| match j.job {
                JobRef::Task { array, .. } => Some(array),
                JobRef::Job(_) => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = cluster.status();
    cluster.scale(6);
    cluster
        .wait_for_workers(6, Duration::from_secs(60))
        .await
        .unwrap();
    let status = cluster.status();
    assert_eq!(status.submitted, before.submitted + 2, "{status:?}");
    assert_eq!(
        arrays(&status).len(),
        arrays(&before).len() + 1,
        "one new array for the 2 new workers: {:?}",
        status.jobs
    );
}

/// SIGKILLs slurmctld at once (the script takes tens of milliseconds).
fn kill_controller_now() {
    let pid_file = "/var/lib/drover-slurm/run/slurmctld.pid";
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = std::fs::remove_file(pid_file);
}

/// Whether any job of the pool has started: its log file exists.
fn any_log(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "out"))
        })
        .unwrap_or(false)
}

/// What Slurm did with the pool's first jobs after a staged crash.
struct CrashOutcome {
    /// Some array task's script started twice: Slurm ran it again, the
    /// case under test. Keyed by array and task, not by job id: a
    /// controller restarted from a state older than the tasks' start gives
    /// their job ids out again (CI saw 65 to 67 reused by the next array).
    rerun: bool,
    /// Jobs the pool had to replace because of what Slurm did: it ended
    /// them badly (FAILED, NODE_FAIL, ...; not jobs drover cancelled or
    /// lost sight of), or it killed their first agents and held the jobs
    /// back (requeued, pending with `BeginTime`) past the heartbeat bound,
    /// so that every worker was lost and the pool cancelled and replaced
    /// them (seen in CI).
    replaced: u64,
}

/// One staged crash. The pool's 4 jobs may start only 8 s after they are
/// submitted, so the controller has saved the array, pending, by then; it
/// is killed the moment the first job starts, before it has saved that the
/// array's tasks run. Restarted, it recovers them pending, its node kills
/// the first scripts as orphans and Slurm starts them again: new agents for
/// the same jobs. Whether Slurm saved the start in time anyway is its own
/// affair (it did when its main scheduler, not backfill, started the jobs),
/// and so is a relaunch that fails: on a loaded machine Slurm relaunched
/// the jobs a second after killing the orphans, and slurmctld logged
/// "Killing non-startable batch JobId=55: Job credential revoked", each
/// job FAILED with exit code 1; in CI it requeued them pending with
/// `BeginTime` instead, and the pool replaced them once their first agents
/// were lost. The pool must hold either way, replacing exactly those jobs
/// and submitting nothing else.
async fn crash_as_jobs_start(
    slurm: common::TestSlurm,
) -> (SlurmCluster, tempfile::TempDir, CrashOutcome) {
    let logs = log_dir();
    let starts = logs.path().join("starts");
    let spec = test_job("drover-rerun", 1, logs.path())
        .job_extra_directives(vec!["--begin=now+8".to_string()])
        .job_script_prologue(vec![format!(
            "echo \"${{SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}_${{SLURM_ARRAY_TASK_ID:-}}\" >> {}",
            starts.display()
        )])
        .build()
        .unwrap();
    let cluster = SlurmCluster::new(spec, test_cluster_options(), slurm)
        .await
        .unwrap();
    common::controller_state_saved().await;
    cluster.scale(4);
    let restart = StartController;
    let dir = logs.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        while !any_log(&dir) {
            assert!(start.elapsed() < Duration::from_secs(60), "no job started");
            std::thread::sleep(Duration::from_millis(1));
        }
        kill_controller_now();
    })
    .await
    .unwrap();
    until("the outage seen", Duration::from_secs(60), || {
        matches!(cluster.status().phase, PoolPhase::SlurmUnreachable { .. })
    })
    .await;
    local_cluster(&["start-controller"]);
    drop(restart);
    // The event: Slurm runs four jobs of the pool (again, or replacements
    // of jobs it failed), and every worker the pool counts has heartbeated
    // since, so none is a killed first agent.
    let name = cluster.job_name().to_string();
    until("Slurm runs 4 jobs", Duration::from_secs(90), || {
        slurm_cmd("squeue", &["-h", "-r", "-t", "R", "-n", &name])
            .lines()
            .count()
            == 4
    })
    .await;
    let running_at = drover::protocol::unix_ms();
    until(
        "every counted worker heartbeats after that",
        Duration::from_secs(60),
        || {
            let live: Vec<_> = cluster
                .scheduler()
                .workers()
                .into_iter()
                .filter(|w| w.state.is_live())
                .collect();
            live.len() == 4 && live.iter().all(|w| w.last_heartbeat_ms > running_at)
        },
    )
    .await;
    let superseded = cluster
        .scheduler()
        .workers()
        .iter()
        .filter(|w| {
            w.exit_reason
                .as_deref()
                .is_some_and(|r| r.contains("superseded"))
        })
        .count();
    let started = std::fs::read_to_string(&starts).unwrap_or_default();
    let mut per_job = std::collections::BTreeMap::<&str, usize>::new();
    for id in started.lines() {
        *per_job.entry(id).or_default() += 1;
    }
    let rerun = per_job.values().any(|&n| n > 1);
    let status = cluster.status();
    let replaced = status
        .jobs
        .iter()
        .filter(|j| {
            let failed = j.state.is_failure() && j.state != JobState::Vanished;
            let lost =
                !j.workers.is_empty() && j.workers.iter().all(|w| w.state == WorkerState::Lost);
            failed || (lost && !j.state.is_active())
        })
        .count() as u64;
    eprintln!(
        "controller crash as jobs started: script starts per array task {per_job:?}, \
         {superseded} agents superseded, {replaced} jobs replaced after Slurm ended them \
         or their agents"
    );
    assert_eq!(status.registered, 4, "each worker counted once: {status:?}");
    let live_jobs = status.jobs.iter().filter(|j| j.state.is_active()).count();
    assert_eq!(live_jobs, 4, "the pool holds 4 jobs: {status:?}");
    assert_eq!(
        status.submitted,
        4 + replaced,
        "no job submitted that the target did not need: {status:?}"
    );
    let outcome = CrashOutcome { rerun, replaced };
    (cluster, logs, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_crash_as_jobs_start_has_their_scripts_rerun_and_the_pool_holds() {
    let Some(slurm) = local_slurm("a_controller_crash_as_jobs_start") else {
        return;
    };
    let _serial = exclusive().await;
    for attempt in 1..=3 {
        let (cluster, _logs, outcome) = crash_as_jobs_start(slurm.clone()).await;
        if !outcome.rerun {
            eprintln!(
                "attempt {attempt}: Slurm ran no script again ({} jobs replaced); \
                 staging again",
                outcome.replaced
            );
            cluster.close().await.unwrap();
            common::controller_state_saved().await;
            continue;
        }
        // The pool works: tasks run on it, and arrays are still used.
        let client = cluster.client();
        let tasks: Vec<TaskSpec> = (0..8)
            .map(|i| TaskSpec {
                argv: vec!["echo".into(), i.to_string()],
                ..Default::default()
            })
            .collect();
        let ids = client.submit(&tasks).await.unwrap();
        common::all_succeed(&client, &ids).await;
        arrays_still_used(&cluster).await;
        cluster.close().await.unwrap();
        common::assert_nodes_healthy();
        common::controller_state_saved().await;
        return;
    }
    panic!("in 3 staged crashes Slurm never ran a job's script again: the case under test was not reached");
}
