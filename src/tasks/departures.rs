//! Runs that end with their worker: a worker gone (lost, left, or
//! superseded) or stopped by Slurm gives its runs back to the queue while
//! their budget lasts, and a restarted scheduler takes back the runs a
//! worker never received. None of these is the task's own failure.

use super::engine::{Engine, LOST_WORKER_RETRIES, STOPPED_RUNS_FREE};
use crate::protocol::{TaskId, TaskState, WorkerId};

impl Engine {
    /// A worker is gone (lost, or left) at `now_ms`: its running tasks go
    /// back to the queue while their budget lasts. Returns how many were
    /// requeued.
    pub fn worker_gone(&mut self, worker: WorkerId, why: &str, now_ms: u64) -> usize {
        self.busy_time.worker_ended(worker, now_ms);
        let Some(held) = self.busy.remove(&worker) else {
            return 0;
        };
        held.tasks
            .into_iter()
            .filter(|id| self.run_lost(*id, worker, why))
            .count()
    }

    /// A worker was stopped from outside (its job preempted or cancelled by
    /// Slurm) at `now_ms`: its running tasks go back to the queue at once, using none
    /// of their retries, up to `STOPPED_RUNS_FREE` stops a task; past
    /// that a stop counts as a lost run. Returns how many were requeued.
    pub fn worker_stopped(&mut self, worker: WorkerId, now_ms: u64) -> usize {
        self.busy_time.worker_ended(worker, now_ms);
        let Some(held) = self.busy.remove(&worker) else {
            return 0;
        };
        let mut requeued = 0;
        for id in held.tasks {
            let t = self.get_mut(id).expect("exists");
            if t.state != TaskState::Running {
                continue;
            }
            if t.stopped >= STOPPED_RUNS_FREE {
                requeued += usize::from(self.run_lost(id, worker, "stopped by Slurm"));
                continue;
            }
            t.stopped += 1;
            t.state = TaskState::Ready;
            t.reason = Some(format!(
                "its worker {worker} was stopped by Slurm (preempted or cancelled), {} times; running it again",
                t.stopped
            ));
            let class = t.class;
            self.ready.insert(id, class);
            requeued += 1;
        }
        requeued
    }

    /// Takes back the runs `worker` was handed but does not hold (`held`:
    /// what it says it runs, or has ended and not yet reported): after a
    /// restart from the journal, an answer that handed them out may never
    /// have reached it. Returns how many were requeued.
    pub fn runs_not_held(&mut self, worker: WorkerId, held: &[crate::protocol::TaskRun]) -> usize {
        let Some(holding) = self.busy.get(&worker) else {
            return 0;
        };
        let missing: Vec<TaskId> = holding
            .tasks
            .iter()
            .copied()
            .filter(|id| {
                let attempt = self.get(*id).map(|t| t.attempts).unwrap_or_default();
                !held.iter().any(|r| r.task == *id && r.attempt == attempt)
            })
            .collect();
        let why = "restarted without its answer reaching the worker";
        let mut requeued = 0;
        for id in missing {
            self.busy_time.never_ran(id, worker);
            self.release(worker, id);
            if self.run_lost(id, worker, why) {
                requeued += 1;
            }
        }
        requeued
    }

    /// A running task's run is lost with its worker: back to the queue
    /// while its budget lasts (`true`), else failed.
    fn run_lost(&mut self, id: TaskId, worker: WorkerId, why: &str) -> bool {
        let t = self.get_mut(id).expect("exists");
        if t.state != TaskState::Running {
            return false;
        }
        t.lost = t.lost.saturating_add(1);
        if t.lost <= LOST_WORKER_RETRIES.saturating_add(t.spec.retries) {
            t.state = TaskState::Ready;
            t.reason = Some(format!("its worker {worker} was {why}; running it again"));
            let class = t.class;
            self.ready.insert(id, class);
            true
        } else {
            let msg = format!("its worker was {why}, {} times", t.lost);
            self.fail(id, msg);
            false
        }
    }
}
