//! The books' decisions, without Slurm.

use super::*;
use crate::protocol::{HoldReason, SlurmPlacement, WorkerState};
use crate::slurm::JobId;
use crate::slurm::SlurmError;

fn refusal(stderr: &str) -> SlurmError {
    SlurmError::failed("sbatch".into(), "exit status: 1".into(), stderr.into())
}

fn job(n: u64) -> JobRef {
    JobRef::Job(JobId::new(n))
}

fn info(n: u64, state: JobState) -> JobInfo {
    JobInfo {
        job: job(n),
        job_id: Some(JobId::new(n)),
        name: "w".into(),
        comment: String::new(),
        state,
        reason: None,
        nodes: None,
        exit_code: None,
        expected_start: None,
    }
}

fn worker(id: u64, job: u64, state: WorkerState) -> WorkerInfo {
    WorkerInfo {
        id: WorkerId(id),
        name: job.to_string(),
        slurm: SlurmPlacement {
            job_id: Some(job),
            ..Default::default()
        },
        hostname: "n".into(),
        address: "a".into(),
        cores: 1,
        memory_bytes: 1,
        allocation_end: None,
        drain_at_ms: None,
        state,
        registered_at_ms: 0,
        last_heartbeat_ms: 0,
        exit_reason: None,
        exited_at_ms: None,
        running_tasks: 0,
        idle_since_ms: Some(0),
        kind: Default::default(),
        dask_name: None,
        offer: Default::default(),
    }
}

fn books() -> Books {
    Books::new(3, Duration::ZERO, Duration::from_secs(5))
}

#[test]
fn scale_up_submits_the_missing_jobs_once() {
    let mut s = books();
    s.target_jobs = 4;
    let now = Instant::now();
    assert_eq!(s.reconcile(Some(&[]), &[], now).submit, 4);
    s.submitted((1..=4).map(job), now);
    let listing: Vec<JobInfo> = (1..=4).map(|n| info(n, JobState::Pending)).collect();
    assert_eq!(s.reconcile(Some(&listing), &[], now).submit, 0);
}

#[test]
fn an_array_listed_as_one_plain_record_keeps_its_tasks() {
    // As after a controller restart in CI: array 64's tasks, listed as
    // one pending record with the array's id and no task.
    let mut s = books();
    s.target_jobs = 4;
    let t0 = Instant::now();
    let tasks = (0..4).map(|task| JobRef::Task {
        array: JobId::new(64),
        task,
    });
    s.submitted(tasks, t0);
    let later = t0 + Duration::from_secs(60);
    let plan = s.reconcile(Some(&[info(64, JobState::Pending)]), &[], later);
    assert_eq!(plan, Plan::default(), "nothing submitted or cancelled");
    assert_eq!(s.jobs.len(), 4, "no job adopted: {:?}", s.jobs.keys());
    assert!(s.jobs.values().all(|r| r.state == JobState::Pending));
}

#[test]
fn scale_down_cancels_pending_first_then_retires_registered() {
    let mut s = books();
    let t0 = Instant::now();
    s.submitted((1..=5).map(job), t0);
    s.target_jobs = 5;
    let mut listing: Vec<JobInfo> = (1..=3).map(|n| info(n, JobState::Running)).collect();
    listing.extend((4..=5).map(|n| info(n, JobState::Pending)));
    let workers: Vec<WorkerInfo> = (1..=3)
        .map(|n| worker(n, n, WorkerState::Running))
        .collect();
    assert_eq!(s.reconcile(Some(&listing), &workers, t0), Plan::default());
    s.target_jobs = 2;
    let plan = s.reconcile(Some(&listing), &workers, t0);
    assert_eq!(plan.cancel, vec![job(5), job(4)], "pending jobs go first");
    assert_eq!(plan.retire.len(), 1, "then one registered worker retires");
    assert_eq!(plan.submit, 0);
    // Nothing more while those act.
    let again = s.reconcile(Some(&listing), &workers, t0);
    assert!(again.cancel.is_empty() && again.retire.is_empty() && again.submit == 0);
}

#[test]
fn failures_before_registering_back_off_and_stop_after_k() {
    let mut s = Books::new(2, Duration::from_millis(1), Duration::from_secs(5));
    s.target_jobs = 1;
    let now = Instant::now();
    s.submitted([job(1)], now);
    let mut failed = info(1, JobState::Failed);
    failed.exit_code = Some(1);
    let plan = s.reconcile(Some(&[failed.clone()]), &[], now);
    assert_eq!(plan.failed, vec![job(1)]);
    assert_eq!(s.consecutive_failures, 1);
    assert!(s.stopped().is_none());
    s.submitted([job(2)], now);
    let mut failed2 = info(2, JobState::Failed);
    failed2.exit_code = Some(1);
    let plan = s.reconcile(
        Some(&[failed, failed2]),
        &[],
        Instant::now() + Duration::from_secs(1),
    );
    assert_eq!(plan.failed, vec![job(2)]);
    assert!(matches!(
        s.phase(),
        PoolPhase::Stopped {
            cause: StopCause::StartupFailures { in_a_row: 2, .. }
        }
    ));
    assert_eq!(plan.submit, 0, "a crash loop stops submitting");
}

#[test]
fn a_registration_resets_the_failure_count_and_external_cancels_are_replaced() {
    let mut s = books();
    s.target_jobs = 2;
    let now = Instant::now();
    s.submitted([job(1), job(2)], now);
    s.consecutive_failures = 2;
    let listing = [info(1, JobState::Running), info(2, JobState::Running)];
    let workers = [
        worker(1, 1, WorkerState::Running),
        worker(2, 2, WorkerState::Running),
    ];
    s.reconcile(Some(&listing), &workers, now);
    assert_eq!(s.consecutive_failures, 0);
    // Someone scancels job 2: it is replaced, and not counted as a failure.
    let listing = [info(1, JobState::Running), info(2, JobState::Cancelled)];
    let plan = s.reconcile(Some(&listing), &workers[..1], now);
    assert_eq!(plan.submit, 1);
    assert!(plan.failed.is_empty());
}

#[test]
fn a_lost_worker_gets_its_job_cancelled_and_replaced() {
    let mut s = books();
    s.target_jobs = 1;
    let now = Instant::now();
    s.submitted([job(1)], now);
    let listing = [info(1, JobState::Running)];
    let plan = s.reconcile(Some(&listing), &[worker(1, 1, WorkerState::Lost)], now);
    assert_eq!(plan.cancel, vec![job(1)]);
    assert_eq!(plan.submit, 1);
}

#[test]
fn limits_keep_the_target_and_hold_the_pool_at_the_cap() {
    let mut s = Books::new(3, Duration::from_secs(60), Duration::from_secs(5));
    s.target_jobs = 3;
    s.submit_failed(&refusal("sbatch: error: QOSMaxSubmitJobPerUserLimit"));
    assert_eq!(s.consecutive_failures, 0);
    assert!(s.stopped().is_none());
    let plan = s.reconcile(Some(&[]), &[], Instant::now());
    assert_eq!(plan.submit, 0, "waits");
    assert!(matches!(
        &s.held_back().unwrap().reasons[..],
        [HoldReason::SlurmCap { slurm, .. }] if slurm.contains("QOSMaxSubmitJobPerUserLimit")
    ));
    // After the wait, one job tries; once Slurm takes it, the rest go.
    let later = Instant::now() + Duration::from_secs(61);
    assert_eq!(s.reconcile(Some(&[]), &[], later).submit, 1);
    s.submitted([job(1)], later);
    assert_eq!(
        s.reconcile(Some(&[info(1, JobState::Pending)]), &[], later)
            .submit,
        2
    );
    s.submit_failed(&refusal("sbatch: error: invalid partition specified: x"));
    assert_eq!(s.consecutive_failures, 1);
}

#[test]
fn a_job_whose_workers_leave_soon_is_replaced_before_they_go() {
    let mut s = books();
    s.replace_lead = Duration::from_secs(20);
    s.target_jobs = 2;
    let t0 = Instant::now();
    s.submitted([job(1), job(2)], t0);
    let listing = [info(1, JobState::Running), info(2, JobState::Running)];
    let now_ms = crate::protocol::unix_ms();
    let mut far = worker(1, 1, WorkerState::Running);
    far.drain_at_ms = Some(now_ms + 3_600_000);
    let mut near = worker(2, 2, WorkerState::Running);
    near.drain_at_ms = Some(now_ms + 10_000);
    let plan = s.reconcile(Some(&listing), &[far.clone(), near.clone()], t0);
    assert_eq!(
        plan.submit, 1,
        "the job leaving within the lead is replaced"
    );
    assert!(plan.cancel.is_empty() && plan.retire.is_empty(), "{plan:?}");
    s.submitted([job(3)], t0);
    let mut listing3 = listing.to_vec();
    listing3.push(info(3, JobState::Pending));
    let plan = s.reconcile(Some(&listing3), &[far.clone(), near], t0);
    assert_eq!(
        plan,
        Plan::default(),
        "one replacement, and the old job is left to drain"
    );
    // A worker that drains on Slurm's signal is replaced too.
    let mut signalled = far;
    signalled.state = WorkerState::Draining;
    let plan = s.reconcile(Some(&listing3), &[signalled], t0);
    assert_eq!(plan.submit, 1);
}

#[test]
fn site_limits_cap_pending_jobs_and_submissions_per_minute() {
    let mut s = books();
    s.limits = Limits {
        max_pending_jobs: Some(3),
        max_submit_per_minute: None,
    };
    s.target_jobs = 10;
    let t0 = Instant::now();
    assert_eq!(s.reconcile(Some(&[]), &[], t0).submit, 3);
    s.submitted((1..=3).map(job), t0);
    let mut listing: Vec<JobInfo> = (1..=3).map(|n| info(n, JobState::Pending)).collect();
    assert_eq!(s.reconcile(Some(&listing), &[], t0).submit, 0);
    assert_eq!(
        s.held_back().unwrap().reasons,
        [HoldReason::PendingLimit { pending: 3, max: 3 }]
    );
    listing[0].state = JobState::Running;
    assert_eq!(s.reconcile(Some(&listing), &[], t0).submit, 1);

    let mut s = books();
    s.limits = Limits {
        max_pending_jobs: None,
        max_submit_per_minute: Some(4),
    };
    s.target_jobs = 10;
    let t0 = Instant::now();
    assert_eq!(s.reconcile(Some(&[]), &[], t0).submit, 4);
    s.submitted((1..=4).map(job), t0);
    let listing: Vec<JobInfo> = (1..=4).map(|n| info(n, JobState::Running)).collect();
    assert_eq!(
        s.reconcile(Some(&listing), &[], t0 + Duration::from_secs(30))
            .submit,
        0
    );
    assert_eq!(
        s.reconcile(Some(&listing), &[], t0 + Duration::from_secs(61))
            .submit,
        4,
        "a minute later the rate allows more"
    );
}

#[test]
fn a_job_of_several_workers_is_removable_only_when_all_are_idle() {
    let mut s = books();
    s.target_jobs = 1;
    let t0 = Instant::now();
    s.submitted([job(1)], t0);
    let listing = [info(1, JobState::Running)];
    let idle = worker(1, 1, WorkerState::Running);
    let mut busy = worker(2, 1, WorkerState::Running);
    busy.running_tasks = 1;
    busy.idle_since_ms = None;
    s.reconcile(Some(&listing), &[idle.clone(), busy], t0);
    assert_eq!(
        s.removable_jobs(1_000),
        (0, 0),
        "one busy process keeps the job"
    );
    let mut idle2 = worker(2, 1, WorkerState::Running);
    idle2.idle_since_ms = Some(500);
    s.reconcile(Some(&listing), &[idle, idle2], t0);
    assert_eq!(s.removable_jobs(1_000), (1, 1), "a running job, idle");
    assert_eq!(s.removable_jobs(100), (0, 0), "not idle long enough");
}

#[test]
fn while_slurm_is_away_nothing_is_submitted_cancelled_or_taken_as_gone() {
    let mut s = books();
    s.target_jobs = 2;
    let t0 = Instant::now();
    s.submitted([job(1), job(2)], t0);
    let workers = [worker(1, 1, WorkerState::Running)];
    let listing = [info(1, JobState::Running), info(2, JobState::Pending)];
    s.reconcile(Some(&listing), &workers, t0);
    let down = SlurmError::Unreachable {
        command: "squeue --json".into(),
        message: "Unable to contact slurm controller (connect failure)".into(),
    };
    s.slurm_unreachable(&down);
    let later = t0 + Duration::from_secs(600);
    // The target goes up and a worker is lost: still nothing to do.
    s.target_jobs = 4;
    let lost = [worker(1, 1, WorkerState::Lost)];
    assert_eq!(s.reconcile(None, &lost, later), Plan::default());
    assert!(matches!(s.phase(), PoolPhase::SlurmUnreachable { .. }));
    // Slurm is back with job 1 but without job 2, whose worker heartbeats.
    s.slurm_answered();
    let workers2 = [
        worker(1, 1, WorkerState::Running),
        worker(2, 2, WorkerState::Running),
    ];
    let plan = s.reconcile(Some(&listing[..1]), &workers2, later);
    assert_eq!(
        s.jobs[&job(2)].state,
        JobState::Pending,
        "a heartbeating job is not gone"
    );
    assert_eq!(plan.submit, 2, "only what the new target needs");
    assert!(plan.cancel.is_empty());
    // A job that is neither listed nor heartbeating is.
    let plan = s.reconcile(Some(&listing[..1]), &workers2[..1], later);
    assert_eq!(s.jobs[&job(2)].state, JobState::Vanished);
    assert_eq!(plan.submit, 3);
    assert!(plan.failed.is_empty(), "a vanished job is no crash");
}

#[test]
fn an_unreachable_controller_during_submission_is_an_outage_not_a_failure() {
    let mut s = books();
    s.target_jobs = 1;
    let down = refusal("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)");
    s.submit_failed(&down);
    assert_eq!(s.consecutive_failures, 0);
    assert!(s.failures.is_empty());
    assert!(s.outage.is_some());
    assert_eq!(s.reconcile(Some(&[]), &[], Instant::now()).submit, 0);
}

#[test]
fn a_requeued_job_keeps_its_place_and_counts_as_preempted() {
    let mut s = books();
    s.target_jobs = 2;
    let now = Instant::now();
    s.submitted((1..=2).map(job), now);
    let running: Vec<JobInfo> = (1..=2).map(|n| info(n, JobState::Running)).collect();
    let workers = [
        worker(1, 1, WorkerState::Running),
        worker(2, 2, WorkerState::Running),
    ];
    assert_eq!(s.reconcile(Some(&running), &workers, now).submit, 0);
    // Job 1 preempted: its worker left (stopped), Slurm lists it pending again.
    let requeued = [info(1, JobState::Pending), info(2, JobState::Running)];
    let workers = [
        worker(1, 1, WorkerState::Exited),
        worker(2, 2, WorkerState::Running),
    ];
    let plan = s.reconcile(Some(&requeued), &workers, now);
    assert_eq!(plan.submit, 0, "it keeps its place: no replacement");
    assert!(plan.cancel.is_empty() && plan.failed.is_empty(), "{plan:?}");
    assert_eq!(s.jobs()[&job(1)].requeues, 1);
    assert_eq!((s.preemptions(), s.recent_preemptions(now)), (1, 1));
    // Still pending at the next look: counted once.
    s.reconcile(Some(&requeued), &workers, now);
    assert_eq!(s.preemptions(), 1);
    // Forgotten after the hour.
    assert_eq!(s.recent_preemptions(now + preempt::PREEMPTION_MEMORY), 0);
    // A job that ends PREEMPTED (PreemptMode=CANCEL) counts too, and is replaced.
    let ended = [info(1, JobState::Pending), info(2, JobState::Preempted)];
    let plan = s.reconcile(Some(&ended), &workers, now);
    assert_eq!(s.preemptions(), 2);
    assert_eq!(plan.submit, 1, "{plan:?}");
}

#[test]
fn a_job_requeued_after_its_worker_was_lost_is_not_a_preemption() {
    let mut s = books();
    s.target_jobs = 1;
    let now = Instant::now();
    s.submitted([job(1)], now);
    let running = [worker(1, 1, WorkerState::Running)];
    s.reconcile(Some(&[info(1, JobState::Running)]), &running, now);
    // Its node died: the worker went silent (lost), Slurm requeued the job.
    let lost = [worker(1, 1, WorkerState::Lost)];
    s.reconcile(Some(&[info(1, JobState::Pending)]), &lost, now);
    assert_eq!(s.jobs()[&job(1)].requeues, 1, "requeued all the same");
    assert_eq!(s.preemptions(), 0, "a node failure, not a preemption");
}

#[test]
fn a_job_cancelled_as_asked_is_cancelled_once_and_replaced() {
    let mut s = books();
    let t0 = Instant::now();
    s.submitted((1..=2).map(job), t0);
    s.target_jobs = 2;
    let listing: Vec<JobInfo> = (1..=2).map(|n| info(n, JobState::Running)).collect();
    let workers: Vec<WorkerInfo> = (1..=2)
        .map(|n| worker(n, n, WorkerState::Running))
        .collect();
    assert_eq!(s.reconcile(Some(&listing), &workers, t0), Plan::default());
    assert!(s.cancel_asked(job(2), t0));
    assert!(!s.cancel_asked(job(2), t0), "already going");
    assert!(!s.cancel_asked(job(9), t0), "no job of this pool");
    let plan = s.reconcile(Some(&listing), &workers, t0);
    assert_eq!(plan.cancel, vec![job(2)]);
    assert_eq!(plan.submit, 1, "it no longer counts: a replacement");
    let again = s.reconcile(Some(&listing), &workers, t0);
    assert!(again.cancel.is_empty(), "cancelled once: {again:?}");
}
