//! Removing jobs: broken ones, those over the target, and all of them
//! while closing; and the nodes replacements keep off.

use tokio::time::Instant;

use super::{Action, Books, JobRecord, Plan, RECANCEL_AFTER, SUSPECT_FOR};
use crate::protocol::WorkerState;
use crate::slurm::{JobRef, JobState};

impl Books {
    /// Job `job` is to be cancelled at the next round, as a person asked
    /// (from the page): from now it no longer counts, so a sized pool
    /// replaces it. `false` when it is no active job of this pool, or is
    /// already going.
    pub fn cancel_asked(&mut self, job: JobRef, now: Instant) -> bool {
        let Some(r) = self.jobs.get_mut(&job) else {
            return false;
        };
        if !r.state.is_active() || r.action.is_some() {
            return false;
        }
        r.action = Some(Action::Cancelling);
        r.action_at = Some(now);
        self.asked_cancels.push(job);
        true
    }

    /// Jobs whose workers the scheduler lost are broken: cancel them (they
    /// are replaced, as they no longer count) and keep new jobs off their node.
    pub(super) fn cancel_broken(&mut self, plan: &mut Plan, now: Instant) {
        for r in self.jobs.values_mut() {
            let lost =
                !r.workers.is_empty() && r.workers.iter().all(|w| w.state == WorkerState::Lost);
            if r.state.is_active() && r.action.is_none() && lost {
                r.action = Some(Action::Cancelling);
                r.action_at = Some(now);
                plan.cancel.push(r.job);
                if let Some(node) = r
                    .node
                    .clone()
                    .or_else(|| r.workers.first().map(|w| w.hostname.clone()))
                {
                    self.suspect_nodes.insert(node, now);
                }
            }
        }
    }

    /// Closing: cancels the jobs without a live worker (pending, starting,
    /// lost), and `all` the rest (the deadline passed: their workers did
    /// not leave in time); those cancelled before are sent again later.
    pub(super) fn cancel_closing(&mut self, plan: &mut Plan, now: Instant, all: bool) {
        for r in self.jobs.values_mut() {
            let unregistered = r.workers.iter().all(|w| w.state == WorkerState::Lost);
            let cancelled = r.action == Some(Action::Cancelling);
            if r.state.is_active() && !cancelled && (all || unregistered) {
                if all && !unregistered {
                    tracing::warn!(job = %r.job, "its workers did not leave in time: cancelling it");
                }
                r.action = Some(Action::Cancelling);
                r.action_at = Some(now);
                plan.cancel.push(r.job);
            }
        }
        self.cancel_again(plan, now);
    }

    /// Cancellations Slurm has not acted on are sent again.
    pub(super) fn cancel_again(&mut self, plan: &mut Plan, now: Instant) {
        for r in self.jobs.values_mut() {
            if r.action == Some(Action::Cancelling)
                && r.state.is_active()
                && r.action_at
                    .is_some_and(|t| now.duration_since(t) > RECANCEL_AFTER)
                && !plan.cancel.contains(&r.job)
            {
                r.action_at = Some(now);
                plan.cancel.push(r.job);
            }
        }
    }

    /// Slurm would not take jobs kept off nodes: they go anywhere.
    pub fn forget_suspects(&mut self) {
        self.suspect_nodes.clear();
    }

    /// Nodes new jobs should keep off now: those that lost their workers
    /// lately and have not run a live worker since.
    pub fn excluded_nodes(&mut self, now: Instant) -> Vec<String> {
        self.suspect_nodes
            .retain(|_, since| now.duration_since(*since) < SUSPECT_FOR);
        self.suspect_nodes.keys().cloned().collect()
    }

    /// Removes `excess` jobs: pending ones first, then ones whose workers
    /// have not registered, then idle workers (longest idle first, retired
    /// gracefully, so their jobs end COMPLETED), busy ones last; newest
    /// first within each kind.
    pub(super) fn shrink(&mut self, excess: usize, now: Instant, plan: &mut Plan) {
        let rank = |r: &JobRecord| match (&r.state, r.workers.is_empty()) {
            (JobState::Pending, true) => 0,
            (_, true) => 1,
            (_, false) if r.workers.iter().all(|w| w.running_tasks == 0) => 2,
            (_, false) => 3,
        };
        let idle_since = |r: &JobRecord| {
            r.workers
                .iter()
                .map(|w| w.idle_since_ms.unwrap_or(u64::MAX))
                .max()
                .unwrap_or(u64::MAX)
        };
        let mut candidates: Vec<&mut JobRecord> =
            self.jobs.values_mut().filter(|r| r.counts()).collect();
        candidates.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then(idle_since(a).cmp(&idle_since(b)))
                .then(b.submitted_at.cmp(&a.submitted_at))
                .then(b.job.cmp(&a.job))
        });
        for r in candidates.into_iter().take(excess) {
            r.action_at = Some(now);
            if r.workers.is_empty() {
                r.action = Some(Action::Cancelling);
                plan.cancel.push(r.job);
            } else {
                r.action = Some(Action::Retiring);
                plan.retire.extend(r.workers.iter().map(|w| w.id));
            }
        }
    }

    /// Since when its oldest job still waits in Slurm's queue (never
    /// registered, pending), if one does.
    pub fn pending_since(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter(|r| r.state == JobState::Pending && !r.registered && r.action.is_none())
            .map(|r| r.submitted_at)
            .min()
    }

    /// Jobs an adaptive pool may give up now: pending or unregistered ones,
    /// and those whose workers have all been idle since before
    /// `idle_before_ms`; and how many of them are the latter (running
    /// jobs: they cost while they are kept).
    pub fn removable_jobs(&self, idle_before_ms: u64) -> (usize, usize) {
        let idle = |r: &&JobRecord| {
            r.workers.iter().all(|w| {
                w.running_tasks == 0 && w.idle_since_ms.is_some_and(|t| t <= idle_before_ms)
            })
        };
        let counted = self.jobs.values().filter(|r| r.counts());
        let (mut removable, mut running) = (0, 0);
        for r in counted.filter(idle) {
            removable += 1;
            running += usize::from(!r.workers.is_empty());
        }
        (removable, running)
    }

    /// Jobs Slurm may still run.
    pub fn active_jobs(&self) -> Vec<JobRef> {
        self.jobs
            .values()
            .filter(|r| r.state.is_active())
            .map(|r| r.job)
            .collect()
    }
}
