//! The registry of workers: who registered, when each was last heard from,
//! and what each should be told at its next poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::protocol::{unix_ms, Instruction, RegisterRequest, WorkerId, WorkerInfo, WorkerState};

/// One worker's record.
struct Entry {
    info: WorkerInfo,
    last_seen: Instant,
    /// Woken when an instruction is queued, so a held poll answers at once.
    wake: Arc<Notify>,
    instruction: Option<Instruction>,
}

/// What a poll finds.
pub(crate) enum PollStart {
    /// An instruction is ready.
    Now(Instruction),
    /// Nothing yet: wait on this until the poll's time is up.
    Wait(Arc<Notify>),
}

/// Every worker of one scheduler.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: u64,
    workers: HashMap<WorkerId, Entry>,
}

impl Registry {
    pub(crate) fn register(&mut self, req: RegisterRequest) -> WorkerId {
        self.next_id += 1;
        let id = WorkerId(self.next_id);
        let now = unix_ms();
        let info = WorkerInfo {
            id,
            name: req.name,
            slurm: req.slurm,
            hostname: req.hostname,
            address: req.address,
            cores: req.cores,
            memory_bytes: req.memory_bytes,
            allocation_end: req.allocation_end,
            state: WorkerState::Running,
            registered_at_ms: now,
            last_heartbeat_ms: now,
            exit_reason: None,
        };
        self.workers.insert(
            id,
            Entry {
                info,
                last_seen: Instant::now(),
                wake: Arc::new(Notify::new()),
                instruction: None,
            },
        );
        id
    }

    /// Records a heartbeat and says whether to answer now or wait. `None`
    /// for an unknown worker. A lost worker that polls again is alive after
    /// all and comes back.
    pub(crate) fn poll(&mut self, id: WorkerId) -> Option<PollStart> {
        let entry = self.workers.get_mut(&id)?;
        entry.last_seen = Instant::now();
        entry.info.last_heartbeat_ms = unix_ms();
        if entry.info.state == WorkerState::Lost {
            tracing::info!(worker = %id, name = %entry.info.name, "lost worker is heard from again");
            entry.info.state = WorkerState::Running;
            entry.info.exit_reason = None;
        }
        if entry.info.state == WorkerState::Exited {
            return Some(PollStart::Now(Instruction::Retire {
                reason: "this worker already deregistered".into(),
            }));
        }
        Some(match &entry.instruction {
            Some(i) => PollStart::Now(i.clone()),
            None => PollStart::Wait(entry.wake.clone()),
        })
    }

    /// The instruction waiting for `id`, if any.
    pub(crate) fn pending(&self, id: WorkerId) -> Option<Instruction> {
        self.workers.get(&id).and_then(|e| e.instruction.clone())
    }

    /// Queues a retirement for `id`; `false` if it is unknown or gone.
    pub(crate) fn retire(&mut self, id: WorkerId, reason: &str) -> bool {
        let Some(entry) = self.workers.get_mut(&id) else {
            return false;
        };
        if matches!(entry.info.state, WorkerState::Exited | WorkerState::Lost) {
            return false;
        }
        entry.info.state = WorkerState::Retiring;
        entry.instruction = Some(Instruction::Retire {
            reason: reason.to_string(),
        });
        entry.wake.notify_one();
        true
    }

    /// Queues a retirement for every live worker; returns how many.
    pub(crate) fn retire_all(&mut self, reason: &str) -> usize {
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        ids.into_iter()
            .filter(|id| self.retire(*id, reason))
            .count()
    }

    /// Marks `id` as gone by its own word.
    pub(crate) fn deregister(&mut self, id: WorkerId, reason: String) -> bool {
        let Some(entry) = self.workers.get_mut(&id) else {
            return false;
        };
        entry.info.state = WorkerState::Exited;
        entry.info.exit_reason = Some(reason);
        entry.instruction = None;
        true
    }

    /// Declares lost every live worker silent for longer than `bound`;
    /// returns how many.
    pub(crate) fn mark_lost(&mut self, bound: Duration) -> usize {
        let now = Instant::now();
        let mut lost = 0;
        for entry in self.workers.values_mut() {
            let live = matches!(
                entry.info.state,
                WorkerState::Running | WorkerState::Retiring | WorkerState::Draining
            );
            let silent = now.duration_since(entry.last_seen);
            if live && silent > bound {
                entry.info.state = WorkerState::Lost;
                entry.info.exit_reason = Some(format!(
                    "no heartbeat for {:.1} s (bound {:.1} s)",
                    silent.as_secs_f64(),
                    bound.as_secs_f64()
                ));
                tracing::warn!(
                    worker = %entry.info.id,
                    name = %entry.info.name,
                    job = %entry.info.slurm,
                    silent_s = silent.as_secs_f64(),
                    "worker lost: no heartbeat"
                );
                lost += 1;
            }
        }
        lost
    }

    /// Every worker, ordered by id.
    pub(crate) fn list(&self) -> Vec<WorkerInfo> {
        let mut v: Vec<WorkerInfo> = self.workers.values().map(|e| e.info.clone()).collect();
        v.sort_by_key(|w| w.id);
        v
    }

    /// How many workers are registered and not gone.
    pub(crate) fn live(&self) -> usize {
        self.workers
            .values()
            .filter(|e| {
                matches!(
                    e.info.state,
                    WorkerState::Running | WorkerState::Retiring | WorkerState::Draining
                )
            })
            .count()
    }
}
