//! The cluster's I/O layer against the fake Slurm, with time under test
//! control: submitting (arrays, and single jobs where arrays are refused),
//! replacing after a failure, Slurm outages, scaling down, closing,
//! cancelling on drop, and the orphan watcher. No Slurm needed; what these
//! show about Slurm itself is nothing (the integration tests do that).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{ClusterError, ClusterOptions, SlurmCluster};
use crate::config::JobOptions;
use crate::protocol::{PoolPhase, RegisterRequest, SlurmPlacement, WorkerId, WorkerState};
use crate::scheduler::Bind;
use crate::slurm::fake::FakeSlurm;
use crate::slurm::{JobRef, JobState, Refusal};

pub(super) fn options() -> ClusterOptions {
    let mut o = ClusterOptions::new(Bind::Host(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    // Workers here do not poll: no heartbeat loss unless a test wants one.
    o.scheduler.heartbeat_interval = Duration::from_secs(3600);
    o.poll_interval = Duration::from_secs(1);
    o.retry_backoff = Duration::from_secs(1);
    o.close_timeout = Duration::from_secs(5);
    o.reaper = false;
    o.handle_signals = false;
    o
}

pub(super) async fn start(
    fake: &FakeSlurm,
    options: ClusterOptions,
) -> (SlurmCluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let spec = JobOptions::new()
        .job_name("t")
        .cores(2u32)
        .log_directory(dir.path())
        .drover_bin("/usr/bin/drover")
        .build()
        .unwrap();
    let cluster = SlurmCluster::new(spec, options, fake.clone())
        .await
        .unwrap();
    (cluster, dir)
}

/// Waits, round by round, until `ok` holds; fails after 60 rounds.
pub(super) async fn until(cluster: &SlurmCluster, what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..60 {
        if ok() {
            return;
        }
        cluster.rounds(1).await;
    }
    panic!(
        "{what}: not after 60 rounds; status: {:#?}",
        cluster.status()
    );
}

/// Starts `job` in the fake Slurm and registers its worker, as its agent would.
fn run_worker(cluster: &SlurmCluster, fake: &FakeSlurm, job: JobRef) -> WorkerId {
    fake.start(job, "node1");
    let job_id = fake.job_id(job).unwrap().get();
    let slurm = match job {
        JobRef::Job(_) => SlurmPlacement {
            job_id: Some(job_id),
            ..Default::default()
        },
        JobRef::Task { array, task } => SlurmPlacement {
            job_id: Some(job_id),
            array_job_id: Some(array.get()),
            array_task_id: Some(u64::from(task)),
            step_id: None,
        },
    };
    cluster
        .scheduler()
        .register(RegisterRequest {
            name: job.to_string(),
            slurm,
            hostname: "node1".into(),
            address: "127.0.0.1".into(),
            cores: 2,
            memory_bytes: 1 << 30,
            allocation_end: None,
            drain_at_ms: None,
            pid: 1,
            kind: Default::default(),
            dask_name: None,
            offer: Default::default(),
        })
        .worker_id
}

/// Plays the agents: a worker told to retire deregisters and its job
/// ends COMPLETED. Returns once no worker is left.
async fn agents_obey(cluster: &SlurmCluster, fake: &FakeSlurm) {
    loop {
        let workers = cluster.scheduler().workers();
        for w in workers.iter().filter(|w| w.state == WorkerState::Retiring) {
            cluster
                .scheduler()
                .deregister(w.id, "retired", crate::protocol::Departure::Orderly);
            let job: JobRef = w.name.parse().unwrap();
            fake.end(job, JobState::Completed, Some(0));
        }
        if workers.iter().all(|w| !w.state.is_live()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn scale_up_submits_one_array_and_scale_down_cancels_pending_first() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(4);
    until(&cluster, "4 jobs submitted", || fake.active().len() == 4).await;
    let subs = fake.submissions();
    assert_eq!(subs.len(), 1, "one sbatch for 4 workers: {subs:?}");
    assert_eq!(subs[0].array, Some(4));
    let tasks = fake.active();
    let w0 = run_worker(&cluster, &fake, tasks[0]);
    cluster.scale(1);
    until(&cluster, "pending jobs cancelled", || {
        fake.active().len() == 1
    })
    .await;
    assert_eq!(fake.active(), vec![tasks[0]], "the registered worker stays");
    assert!(cluster
        .scheduler()
        .workers()
        .iter()
        .any(|w| w.id == w0 && w.state == WorkerState::Running));
    assert_eq!(fake.submissions().len(), 1, "nothing resubmitted");
    cluster.scale(0);
    until(&cluster, "the last worker retiring", || {
        cluster.scheduler().workers()[0].state == WorkerState::Retiring
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn arrays_refused_then_single_submissions_from_then_on() {
    let fake = FakeSlurm::new();
    fake.refuse_arrays();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(3);
    until(&cluster, "3 jobs submitted", || fake.active().len() == 3).await;
    // One refused array was tried, then single jobs only.
    let subs = fake.submissions();
    assert_eq!(subs.len(), 3);
    assert!(subs.iter().all(|s| s.array.is_none()), "{subs:?}");
    cluster.scale(5);
    until(&cluster, "5 jobs submitted", || fake.active().len() == 5).await;
    assert!(fake.submissions().iter().all(|s| s.array.is_none()));
    assert_eq!(
        cluster.status().failures,
        vec![],
        "a refused array is no failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_that_fails_before_registering_is_reported_and_replaced() {
    let fake = FakeSlurm::new();
    let (cluster, dir) = start(&fake, options()).await;
    cluster.scale(1);
    until(&cluster, "a job submitted", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    fake.start(job, "node1");
    let id = fake.job_id(job).unwrap();
    std::fs::write(
        dir.path().join(format!("{}-{id}.err", cluster.job_name())),
        "boom\n",
    )
    .unwrap();
    fake.end(job, JobState::Failed, Some(3));
    let err = cluster
        .wait_for_workers(1, Duration::from_secs(600))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClusterError::StartupFailed(_)), "{text}");
    assert!(text.contains("ended FAILED with exit code 3"), "{text}");
    assert!(
        text.contains("boom"),
        "the log tail is in the error: {text}"
    );
    until(&cluster, "a replacement", || {
        fake.active().len() == 1 && fake.active()[0] != job
    })
    .await;
    assert_eq!(fake.submissions().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_stops_submitting_and_scaling_again_retries() {
    let fake = FakeSlurm::new();
    let mut o = options();
    o.max_startup_failures = 2;
    let (cluster, _dir) = start(&fake, o).await;
    cluster.scale(1);
    for n in 1..=2 {
        until(&cluster, "a job submitted", || fake.active().len() == 1).await;
        fake.end(fake.active()[0], JobState::Failed, Some(1));
        until(&cluster, "the failure seen", || {
            cluster.status().failures.len() == n
        })
        .await;
    }
    until(&cluster, "stopped", || {
        matches!(cluster.status().phase, PoolPhase::Stopped { .. })
    })
    .await;
    cluster.rounds(5).await;
    assert!(fake.active().is_empty(), "no submission after the stop");
    assert_eq!(fake.submissions().len(), 2);
    cluster.scale(1);
    until(&cluster, "submitting again", || fake.active().len() == 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_slurm_outage_holds_the_pool_and_reads_nothing_as_lost() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(2);
    until(&cluster, "2 jobs", || fake.active().len() == 2).await;
    let jobs = fake.active();
    for j in &jobs {
        run_worker(&cluster, &fake, *j);
    }
    fake.set_down(true);
    until(&cluster, "the outage seen", || {
        matches!(cluster.status().phase, PoolPhase::SlurmUnreachable { .. })
    })
    .await;
    // Asked for more while Slurm is away: nothing is submitted or cancelled.
    cluster.scale(4);
    cluster.rounds(10).await;
    assert_eq!(fake.submissions().len(), 1);
    assert!(fake.cancelled().is_empty());
    let status = cluster.status();
    assert_eq!(status.registered, 2, "the workers are kept");
    assert!(
        matches!(status.phase, PoolPhase::SlurmUnreachable { .. }),
        "{:?}",
        status.phase
    );
    assert_eq!(
        status.held_back, None,
        "nothing is wanted while Slurm is away"
    );
    // Slurm is back, having lost one job whose worker still heartbeats.
    fake.forget(jobs[1]);
    fake.set_down(false);
    until(&cluster, "2 more jobs", || fake.active().len() == 3).await;
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(
        subs[1].array,
        Some(2),
        "arrays still used, only the 2 the target needs"
    );
    assert_eq!(cluster.status().phase, PoolPhase::Running);
}

#[tokio::test(start_paused = true)]
async fn close_retires_workers_cancels_the_rest_and_leaves_nothing() {
    let fake = FakeSlurm::new();
    let (cluster, dir) = start(&fake, options()).await;
    cluster.scale(3);
    until(&cluster, "3 jobs", || fake.active().len() == 3).await;
    let jobs = fake.active();
    run_worker(&cluster, &fake, jobs[0]);
    run_worker(&cluster, &fake, jobs[1]);
    let file = cluster.scheduler_file().to_path_buf();
    assert!(file.exists());
    let t0 = tokio::time::Instant::now();
    let (closed, ()) = tokio::join!(cluster.close(), agents_obey(&cluster, &fake));
    closed.unwrap();
    assert!(
        t0.elapsed() < options().close_timeout,
        "no waiting for the close timeout: {:?}",
        t0.elapsed()
    );
    assert!(fake.active().is_empty());
    assert_eq!(
        fake.in_state(JobState::Completed).len(),
        2,
        "retired workers end COMPLETED"
    );
    assert_eq!(
        fake.in_state(JobState::Cancelled),
        vec![jobs[2]],
        "the unregistered one is cancelled"
    );
    assert!(!file.exists(), "the scheduler file goes");
    assert!(
        fake.cancelled_names().is_empty(),
        "a closed pool cancels nothing on drop"
    );
    drop(cluster);
    assert!(fake.cancelled_names().is_empty());
    drop(dir);
}

#[tokio::test(start_paused = true)]
async fn workers_that_do_not_leave_are_cancelled_at_the_close_timeout() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(1);
    until(&cluster, "1 job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    run_worker(&cluster, &fake, job);
    cluster.close().await.unwrap();
    assert_eq!(fake.in_state(JobState::Cancelled), vec![job]);
}

#[tokio::test(start_paused = true)]
async fn dropping_an_unclosed_pool_cancels_its_jobs_by_name() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(2);
    until(&cluster, "2 jobs", || fake.active().len() == 2).await;
    let name = cluster.job_name().to_string();
    drop(cluster);
    assert_eq!(fake.cancelled_names(), vec![name]);
    assert!(fake.active().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lost_worker_gets_its_job_cancelled_and_replaced_off_its_node() {
    let fake = FakeSlurm::new();
    let mut o = options();
    o.scheduler.heartbeat_interval = Duration::from_secs(5);
    let (cluster, _dir) = start(&fake, o).await;
    cluster.scale(1);
    until(&cluster, "1 job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    run_worker(&cluster, &fake, job);
    // It never heartbeats: after 3 intervals it is lost.
    until(&cluster, "its job cancelled", || {
        fake.in_state(JobState::Cancelled) == vec![job]
    })
    .await;
    until(&cluster, "a replacement", || fake.active().len() == 1).await;
    let subs = fake.submissions();
    assert_eq!(
        subs.last().unwrap().exclude,
        vec!["node1".to_string()],
        "{subs:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_user_limits_keep_the_target_and_retry() {
    let fake = FakeSlurm::new();
    fake.refuse_next(Refusal::Limit, "sbatch: error: QOSMaxSubmitJobPerUserLimit");
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(2);
    until(&cluster, "2 jobs after the limit", || {
        fake.active().len() == 2
    })
    .await;
    let status = cluster.status();
    assert!(status.failures.is_empty(), "a limit is no failure");
    assert!(status
        .last_error
        .unwrap()
        .error
        .contains("QOSMaxSubmitJobPerUserLimit"));
}

#[tokio::test]
async fn the_orphan_watcher_cancels_by_name_once_the_driver_is_gone() {
    let fake = FakeSlurm::new();
    let mut driver = std::process::Command::new("sleep")
        .arg("0.3")
        .spawn()
        .unwrap();
    let pid = driver.id();
    let reaped = std::thread::spawn(move || driver.wait());
    super::reaper::watch(pid, "t-abc", &fake, None)
        .await
        .unwrap();
    assert!(reaped.join().unwrap().is_ok());
    assert_eq!(fake.cancelled_names(), vec!["t-abc".to_string()]);
}

#[tokio::test]
async fn with_a_journal_the_orphan_watcher_leaves_the_jobs_to_a_pool_that_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pool.json");
    let bind = Bind::Host(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let back = crate::scheduler::Scheduler::start(crate::scheduler::SchedulerConfig::new(bind))
        .await
        .unwrap();
    back.write_scheduler_file(&file).unwrap();
    let dead_driver = || {
        let mut p = std::process::Command::new("true").spawn().unwrap();
        p.wait().unwrap();
        p.id()
    };
    let reattach = |cluster_id: String| super::reaper::Reattach {
        grace: Duration::from_millis(1500),
        scheduler_file: file.clone(),
        cluster_id,
    };
    // The pool's own cluster answers at its scheduler file: nothing cancelled.
    let fake = FakeSlurm::new();
    let ours = reattach(back.cluster_id().to_string());
    super::reaper::watch(dead_driver(), "t-abc", &fake, Some(&ours))
        .await
        .unwrap();
    assert!(fake.cancelled_names().is_empty());
    // Another cluster answers there: the grace runs out, the jobs go.
    let other = reattach("c0ffee00".into());
    let start = std::time::Instant::now();
    super::reaper::watch(dead_driver(), "t-abc", &fake, Some(&other))
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(fake.cancelled_names(), vec!["t-abc".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn scaling_by_cores_and_memory_rounds_up_to_whole_jobs() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    // Jobs of 2 cores and 1 GiB (the default memory).
    cluster.scale_cores(5);
    until(&cluster, "3 jobs for 5 cores", || fake.active().len() == 3).await;
    cluster.scale_memory("2.5GiB".parse().unwrap());
    until(&cluster, "3 jobs for 2.5 GiB", || {
        cluster.status().target_jobs == 3
    })
    .await;
    cluster.scale_memory("4GiB".parse().unwrap());
    until(&cluster, "4 jobs for 4 GiB", || fake.active().len() == 4).await;
    cluster.scale_cores(1);
    until(&cluster, "1 job for 1 core", || fake.active().len() == 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_large_scale_goes_in_chunks_each_after_slurms_pass() {
    let fake = FakeSlurm::new();
    fake.set_scheduler(crate::slurm::SchedulerConfig::default());
    let (cluster, _dir) = start(&fake, options()).await;
    let arrays = || {
        fake.submissions()
            .iter()
            .map(|s| s.array.unwrap_or(1))
            .collect::<Vec<_>>()
    };
    cluster.scale(250);
    until(&cluster, "a first chunk", || !arrays().is_empty()).await;
    assert_eq!(arrays(), [100], "one pass deep");
    // Until Slurm has looked at the chunk, the rest waits.
    cluster.rounds(3).await;
    assert_eq!(arrays(), [100]);
    assert_eq!(fake.pass(), 100);
    until(&cluster, "a second chunk", || arrays().len() == 2).await;
    assert_eq!(arrays(), [100, 100]);
    // A pass that never shows is assumed once Slurm's delays are over.
    let before = tokio::time::Instant::now();
    until(&cluster, "the last chunk", || arrays().len() == 3).await;
    assert!(
        before.elapsed() >= Duration::from_secs(3),
        "{:?}",
        before.elapsed()
    );
    assert_eq!(arrays(), [100, 100, 50]);
}

#[tokio::test]
async fn a_scale_through_the_scheduler_is_in_the_journal_before_it_is_answered() {
    use crate::journal::{Journal, Op, PoolMode};
    use crate::scheduler::{Scheduler, SchedulerConfig};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("pool.journal");
    let mut config = SchedulerConfig::new(Bind::Host(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    config.journal = Some(journal.clone());
    let scheduler = Scheduler::start(config).await.unwrap();
    // A pool of 2 workers per job that has not yet taken the request.
    let _unread = scheduler.attach_control(
        None,
        crate::config::PerJob {
            workers: 2,
            cores: 2,
            memory: 1,
        },
    );
    scheduler.client().scale(5, None).await.unwrap();
    // Answered: a scheduler killed right now comes back at 3 jobs.
    let last = Journal::read(&journal)
        .unwrap()
        .into_iter()
        .rev()
        .find_map(|op| match op {
            Op::Pool(mode) => Some(mode),
            _ => None,
        });
    assert_eq!(last, Some(PoolMode::Fixed { jobs: 3 }));
}

/// `POST /v1/cluster/adapt` reaches the pool as a control request, and a
/// range that is no range is refused at the door.
#[tokio::test]
async fn adapt_through_the_scheduler_reaches_the_pool() {
    use crate::protocol::AdaptRequest;
    use crate::scheduler::{ControlRequest, Scheduler, SchedulerConfig};
    let config = SchedulerConfig::new(Bind::Host(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let scheduler = Scheduler::start(config).await.unwrap();
    let per_job = crate::config::PerJob {
        workers: 1,
        cores: 1,
        memory: 1,
    };
    let mut rx = scheduler.attach_control(None, per_job);
    let ask = |min, max| AdaptRequest {
        min,
        max,
        idle_timeout_ms: Some(30_000),
        group: None,
    };
    scheduler.client().adapt(&ask(1, 4)).await.unwrap();
    let got = rx.recv().await.unwrap();
    assert_eq!(
        got,
        ControlRequest::Adapt {
            min: 1,
            max: 4,
            idle: Some(Duration::from_secs(30))
        }
    );
    let e = scheduler.client().adapt(&ask(5, 2)).await.unwrap_err();
    assert!(e.to_string().contains("0 <= min <= max"), "{e}");
}

/// A pool told to adapt through the scheduler starts at its minimum.
#[tokio::test(start_paused = true)]
async fn a_pool_adapts_as_the_scheduler_was_asked() {
    use crate::scheduler::ControlRequest;
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.pool().control(ControlRequest::Adapt {
        min: 2,
        max: 5,
        idle: None,
    });
    until(&cluster, "the minimum submitted", || {
        fake.active().len() == 2
    })
    .await;
    assert!(cluster.pool().adapt.lock().is_some(), "adapting");
}
