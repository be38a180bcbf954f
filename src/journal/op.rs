//! What the journal records: every change to a scheduler's book that a
//! restart must find again, as the inputs that made it, with the times
//! they were made at. Replaying them through the same (pure) book in the
//! same order rebuilds the same state: the tasks, their runs on workers,
//! their results, and the workers themselves.
//!
//! Heartbeats are not recorded: after a restart every worker of the book
//! gets a fresh silence bound, and those that do not come back are lost
//! (their tasks requeued) as they would have been without the restart.

use serde::{Deserialize, Serialize};

use crate::protocol::{
    Completion, Departure, Instruction, RegisterRequest, TaskId, TaskRun, TaskSpec, WorkerId,
    WorkerInfo,
};
use crate::tasks::TaskImage;

/// Who the scheduler is: written first, so that a restart serves the
/// same workers at the same address with the same credentials. The
/// journal holds the token and the certificate's key: it is created
/// private to its owner (0600), like the scheduler file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The drover version that wrote the journal.
    pub drover: String,
    pub cluster_id: String,
    pub token: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The address it listened on.
    pub address: String,
    /// When the pool began (Unix ms; older journals: 0), kept by every
    /// later identity: what a pool cost counts from then.
    #[serde(default)]
    pub began_ms: u64,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The first record.
    Identity(Identity),
    /// A worker registered and was given `id`.
    Register {
        id: WorkerId,
        request: RegisterRequest,
        at_ms: u64,
    },
    /// A worker was handed the ready tasks that fit it.
    Assign { worker: WorkerId, at_ms: u64 },
    /// A worker reported a task ended.
    Complete { worker: WorkerId, done: Completion },
    /// A batch of tasks was submitted.
    Submit { specs: Vec<TaskSpec> },
    /// A task was cancelled.
    Cancel { task: TaskId },
    /// A worker said it drains: no more tasks for it.
    Draining { worker: WorkerId },
    /// A worker was asked to retire.
    Retire { worker: WorkerId, reason: String },
    /// A worker left by its own word.
    Deregister {
        worker: WorkerId,
        reason: String,
        at_ms: u64,
        /// How it left (older journals: orderly).
        #[serde(default)]
        departure: Departure,
    },
    /// A worker was declared lost (silent, or superseded).
    Lost {
        worker: WorkerId,
        reason: String,
        at_ms: u64,
    },
    /// The pool said how many cores its largest worker has.
    MaxCores { cores: u32 },
    /// The pool said how much memory its largest worker has.
    MaxMemory { bytes: u64 },
    /// The pool said what its workers have, per group.
    Shapes {
        shapes: Vec<crate::protocol::WorkerShape>,
    },
    /// After a restart, a worker said which of its runs it holds; the
    /// others were requeued.
    Confirm {
        worker: WorkerId,
        held: Vec<crate::protocol::TaskRun>,
    },
    /// The pool's size was set: a restarted pool holds it.
    Pool(PoolMode),
    /// A group of a pool with groups was sized.
    GroupPool { group: String, mode: PoolMode },
    /// The core-milliseconds of idle jobs a pool (or its `group`) kept
    /// for its adaptive cooldown so far (its total, not an increment).
    CooldownIdle {
        #[serde(default)]
        group: Option<String>,
        core_ms: u64,
    },
    /// The pool was closed: there is nothing to continue.
    Closed { at_ms: u64 },
    /// An action was taken from the status page (its effect is recorded
    /// by its own record, where it has one: this says who asked).
    PageAction {
        action: crate::protocol::PageAction,
        at_ms: u64,
    },
    /// The whole book as it was when the journal was compacted: the
    /// records it replaces are gone, and those after it apply to it. Its
    /// tasks follow in `SnapshotTasks` records (a record is bounded).
    Snapshot(Box<Snapshot>),
    /// The next tasks of a snapshot, in id order.
    SnapshotTasks { tasks: Vec<TaskImage> },
}

/// A scheduler's whole book at one moment: what a compacted journal holds
/// in place of the changes that built it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken (Unix ms).
    pub at_ms: u64,
    /// The last worker id given out.
    pub next_worker: u64,
    pub workers: Vec<WorkerImage>,
    /// How many tasks the `SnapshotTasks` records after it hold.
    pub tasks: u64,
    /// Cores of the pool's largest worker, once the pool said.
    pub max_cores: Option<u32>,
    /// Memory of the pool's largest worker, once the pool said.
    #[serde(default)]
    pub max_memory: Option<u64>,
    /// The pool's worker shapes, once the pool said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<crate::protocol::WorkerShape>,
    pub pool: Option<PoolMode>,
    /// How each group of a pool with groups is sized.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub group_pools: std::collections::BTreeMap<String, PoolMode>,
    /// What the tasks' runs used so far, per group (older journals:
    /// nothing).
    #[serde(default)]
    pub busy: crate::tasks::BusyBook,
}

/// One worker as the snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerImage {
    pub info: WorkerInfo,
    /// Its agent's process id, which tells a retried registration from a
    /// new agent.
    pub pid: u32,
    /// What it is to be told at its next poll (a retirement).
    pub instruction: Option<Instruction>,
    /// Runs of cancelled tasks it is still to kill.
    pub cancels: Vec<TaskRun>,
}

/// How a pool is sized, as its driver last said: what a pool started on
/// the journal again holds (its adaptive target follows the work anew).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PoolMode {
    /// `scale`: this many jobs.
    Fixed { jobs: usize },
    /// `adapt`: between these many jobs, retiring workers idle this long.
    Adapt {
        min_jobs: usize,
        max_jobs: usize,
        idle_ms: u64,
    },
}

impl Op {
    /// The op as one framed record of the journal file.
    pub(super) fn record(&self) -> Vec<u8> {
        super::frame::frame(&serde_json::to_vec(self).expect("ops serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_read_back_as_written() {
        let ops = vec![
            Op::Submit {
                specs: vec![TaskSpec {
                    argv: vec!["echo".into(), "hi".into()],
                    ..Default::default()
                }],
            },
            Op::Assign {
                worker: WorkerId(3),
                at_ms: 17,
            },
            Op::Cancel { task: TaskId(1) },
            Op::MaxCores { cores: 4 },
            Op::Pool(PoolMode::Adapt {
                min_jobs: 1,
                max_jobs: 8,
                idle_ms: 60_000,
            }),
        ];
        for op in ops {
            let bytes = serde_json::to_vec(&op).unwrap();
            let back: Op = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, op);
        }
    }
}
