//! The scheduler's operations, shared by its HTTP face and its in-process
//! handle: each takes the registry's lock once, changes it, and tells the
//! waiters.

use super::Shared;
use crate::protocol::{
    Completion, Departure, RegisterRequest, RegisterResponse, TaskId, TaskSpec, WorkerId,
};
use crate::tasks::SubmitError;

impl Shared {
    pub(crate) fn register(&self, req: RegisterRequest) -> RegisterResponse {
        let (name, job, host, address) = (
            req.name.clone(),
            req.slurm.to_string(),
            req.hostname.clone(),
            req.address.clone(),
        );
        let id = self.registry().register(req);
        self.changed();
        tracing::info!(worker = %id, %name, %job, %host, %address, "worker registered");
        RegisterResponse {
            worker_id: id,
            cluster_id: self.cluster_id.clone(),
            heartbeat_interval_ms: u64::try_from(self.config.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
        }
    }

    pub(crate) fn deregister(&self, id: WorkerId, reason: &str, departure: Departure) -> bool {
        // Bounded and on one line before it is kept or logged.
        let reason = crate::protocol::text::reason(reason);
        let known = self.registry().deregister(id, reason.clone(), departure);
        if known {
            self.changed();
            tracing::info!(worker = %id, %reason, ?departure, "worker deregistered");
        }
        known
    }

    pub(crate) fn retire(&self, id: WorkerId, reason: &str) -> bool {
        let reason = &crate::protocol::text::reason(reason);
        let done = self.registry().retire(id, reason);
        if done {
            self.changed();
        }
        done
    }

    pub(crate) fn retire_all(&self, reason: &str) -> usize {
        let reason = &crate::protocol::text::reason(reason);
        let n = self.registry().retire_all(reason);
        if n > 0 {
            self.changed();
        }
        tracing::info!(workers = n, %reason, "retiring every worker");
        n
    }

    /// Takes a worker's reports of ended tasks; stale ones change nothing.
    pub(crate) fn complete(&self, id: WorkerId, reports: Vec<Completion>) {
        let mut changed = false;
        {
            let mut registry = self.registry();
            for done in reports {
                let task = done.task;
                if registry.complete(id, done) {
                    changed = true;
                } else {
                    tracing::debug!(worker = %id, %task, "stale task report ignored");
                }
            }
        }
        if changed {
            self.changed();
        }
    }

    pub(crate) fn submit(&self, tasks: Vec<TaskSpec>) -> Result<Vec<TaskId>, SubmitError> {
        let ids = self.registry().submit(tasks)?;
        self.changed();
        Ok(ids)
    }

    /// Cancels a task and what depends on it; `false` for an unknown task.
    pub(crate) fn cancel_task(&self, id: TaskId) -> bool {
        let mut registry = self.registry();
        if registry.tasks.info(id).is_none() {
            return false;
        }
        registry.cancel_task(id);
        registry.wake_idle();
        drop(registry);
        self.changed();
        true
    }
}
