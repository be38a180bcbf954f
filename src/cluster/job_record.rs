//! One job of a pool as its books keep it: what Slurm and the scheduler
//! last said of it, and what drover is doing with it.

use tokio::time::Instant;

use crate::protocol::{JobEnd, WorkerInfo};
use crate::slurm::{JobId, JobRef, JobState};

/// What drover is doing with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Its workers were asked to retire.
    Retiring,
    /// It was cancelled.
    Cancelling,
}

/// How a job's end is learnt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EndLookup {
    /// Slurm's listing shows it, or showed how it ended: nothing to ask.
    Listed,
    /// It left the listing while active, at `since`: accounting is asked
    /// once a round (every such job of every group in one call).
    Asking { since: Instant },
    /// Known from accounting, or known to be unknowable.
    Known(JobEnd),
}

/// One job of the cluster.
#[derive(Debug, Clone)]
pub(crate) struct JobRecord {
    pub job: JobRef,
    pub job_id: Option<JobId>,
    pub state: JobState,
    pub reason: Option<String>,
    /// While it waits: Slurm's expected start (Unix seconds).
    pub expected_start: Option<u64>,
    pub node: Option<String>,
    pub exit_code: Option<i32>,
    pub action: Option<Action>,
    pub action_at: Option<Instant>,
    /// Whether any of its workers ever registered.
    pub registered: bool,
    /// Its workers, as of the last look.
    pub workers: Vec<WorkerInfo>,
    pub submitted_at: Instant,
    /// The same instant in Unix seconds, for people (the page's ages).
    pub submitted_s: u64,
    /// Whether its end has been accounted for.
    pub ended: bool,
    /// Its workers leave soon for the time limit: it no longer counts, so
    /// its replacement starts before they go.
    pub expiring: bool,
    /// How its end is known, once it left the listing.
    pub end: EndLookup,
    /// Whether Slurm's listing ever showed it: one that did and no longer
    /// does has left it (no grace for a listing that lags a submission).
    pub listed: bool,
    /// Whether it was released once after Slurm held it (`held.rs`).
    pub released: bool,
    /// How often Slurm put it back in the queue after it ran (preempted,
    /// or its node failed).
    pub requeues: u32,
}

impl JobRecord {
    pub(super) fn new(job: JobRef, now: Instant) -> Self {
        JobRecord {
            job,
            job_id: match job {
                JobRef::Job(id) => Some(id),
                JobRef::Task { .. } => None,
            },
            state: JobState::Pending,
            reason: None,
            expected_start: None,
            node: None,
            exit_code: None,
            action: None,
            action_at: None,
            registered: false,
            workers: Vec::new(),
            submitted_at: now,
            submitted_s: crate::protocol::unix_ms() / 1000,
            ended: false,
            expiring: false,
            end: EndLookup::Listed,
            listed: false,
            released: false,
            requeues: 0,
        }
    }

    /// Still counted toward the pool: active in Slurm and not being removed.
    pub fn counts(&self) -> bool {
        self.state.is_active() && self.action.is_none() && !self.expiring
    }
}

/// The job (or array task) a worker runs in.
pub(crate) fn job_of(w: &WorkerInfo) -> Option<JobRef> {
    match (w.slurm.array_job_id, w.slurm.array_task_id, w.slurm.job_id) {
        (Some(a), Some(t), _) => Some(JobRef::Task {
            array: JobId::new(a),
            task: u32::try_from(t).ok()?,
        }),
        (_, _, Some(j)) => Some(JobRef::Job(JobId::new(j))),
        _ => None,
    }
}
