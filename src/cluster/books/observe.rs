//! What Slurm and the scheduler said: the listing taken in, workers matched
//! to their jobs, ends asked of accounting and accounted for.

use std::collections::HashSet;

use tokio::time::Instant;

use super::preempt::take_requeue;
use super::{job_of, Books, EndLookup, JobRecord, Plan, KEEP_ENDED};
use crate::cluster::{fates, listing};
use crate::protocol::{unix_ms, WorkerInfo, WorkerState};
use crate::slurm::{JobInfo, JobRef, JobState};

impl Books {
    /// Takes in what Slurm listed. A job it no longer lists is gone, unless
    /// one of its workers still heartbeats: then it runs, whatever Slurm
    /// (perhaps a controller that lost its state) says.
    pub(super) fn observe(&mut self, listing: &[JobInfo], workers: &[WorkerInfo], now: Instant) {
        let expected = self
            .jobs
            .values()
            .filter(|r| matches!(r.job, JobRef::Job(_)) || r.state.is_active())
            .map(|r| r.job);
        let listing = listing::as_submitted(listing, expected);
        let mut seen = HashSet::new();
        let mut preemptions = 0;
        let lost: HashSet<JobRef> = workers
            .iter()
            .filter(|w| w.state == WorkerState::Lost)
            .filter_map(job_of)
            .collect();
        for info in listing.iter() {
            seen.insert(info.job);
            let r = self
                .jobs
                .entry(info.job)
                .or_insert_with(|| JobRecord::new(info.job, now));
            if take_requeue(r, &info.state, lost.contains(&r.job)) {
                preemptions += 1;
            }
            r.state = info.state.clone();
            r.end = EndLookup::Listed;
            r.listed = true;
            r.reason = info.reason.clone();
            r.expected_start = info.expected_start;
            if info.job_id.is_some() {
                r.job_id = info.job_id;
            }
            if info.nodes.is_some() {
                r.node = info.nodes.clone();
            }
            r.exit_code = info.exit_code;
        }
        for _ in 0..preemptions {
            self.note_preemption(now);
        }
        let heartbeating: HashSet<JobRef> = workers
            .iter()
            .filter(|w| w.state.is_live())
            .filter_map(job_of)
            .collect();
        for r in self.jobs.values_mut() {
            if !seen.contains(&r.job)
                && r.state.is_active()
                && !heartbeating.contains(&r.job)
                && (r.listed || now.duration_since(r.submitted_at) > self.vanish_grace)
            {
                // Ended and forgotten, or lost: accounting is asked how.
                r.state = JobState::Vanished;
                r.end = EndLookup::Asking { since: now };
            }
        }
    }

    /// The jobs whose end accounting should tell this round.
    pub fn ends_wanted(&self) -> Vec<JobRef> {
        self.jobs
            .values()
            .filter(|r| fates::wanted(r))
            .map(|r| r.job)
            .collect()
    }

    /// Takes accounting's answer for the jobs `ends_wanted` named; their
    /// ends are accounted for (a failure counted, say) in the next round.
    pub fn take_fates(&mut self, answer: fates::Answer<'_>, now: Instant) {
        for r in self.jobs.values_mut() {
            if let Some(line) = fates::take(r, answer, now) {
                tracing::info!("{line}");
            }
        }
    }

    pub(super) fn match_workers(&mut self, workers: &[WorkerInfo], now: Instant) {
        for r in self.jobs.values_mut() {
            r.workers.clear();
        }
        for w in workers {
            let Some(key) = job_of(w) else { continue };
            if let Some(r) = self.jobs.get_mut(&key) {
                if !r.registered {
                    r.registered = true;
                    // A worker came up: whatever failed before was not a crash loop.
                    self.consecutive_failures = 0;
                    self.startup = Some(now.duration_since(r.submitted_at));
                    // ...and its node works again.
                    self.suspect_nodes.remove(&w.hostname);
                    if let Some(node) = &r.node {
                        self.suspect_nodes.remove(node);
                    }
                }
                r.workers.push(w.clone());
            }
        }
        self.mark_expiring();
    }

    /// Replaces a job early enough that its replacement has started by the
    /// time its workers leave for the time limit.
    pub(super) fn mark_expiring(&mut self) {
        let lead = self.replace_lead + self.startup.unwrap_or_default();
        let horizon = unix_ms().saturating_add(u64::try_from(lead.as_millis()).unwrap_or(u64::MAX));
        for r in self.jobs.values_mut() {
            let live: Vec<&WorkerInfo> = r
                .workers
                .iter()
                .filter(|w| w.state != WorkerState::Exited)
                .collect();
            r.expiring = r.expiring
                || (!live.is_empty()
                    && live.iter().all(|w| {
                        w.state == WorkerState::Draining
                            || w.drain_at_ms.is_some_and(|t| t <= horizon)
                    }));
        }
    }

    pub(super) fn account_ends(&mut self, plan: &mut Plan, now: Instant) {
        let before = plan.failed.len();
        let mut preempted = 0;
        for r in self.jobs.values_mut() {
            // A job whose end accounting is asked about waits for its answer.
            if r.ended || r.state.is_active() || fates::wanted(r) {
                continue;
            }
            r.ended = true;
            if r.state == JobState::Preempted {
                preempted += 1;
            }
            if r.action.is_some() || r.registered {
                continue; // removed by us, or a worker that served: replaced if needed
            }
            if r.state.ended_on_its_own() {
                self.consecutive_failures += 1;
                self.failures_seen += 1;
                plan.failed.push(r.job);
            }
        }
        for _ in 0..preempted {
            self.note_preemption(now);
        }
        if plan.failed.len() > before {
            self.after_failure();
        }
    }

    /// Forgets the oldest ended jobs beyond `KEEP_ENDED`.
    pub(super) fn prune(&mut self) {
        let ended: Vec<JobRef> = self
            .jobs
            .values()
            .filter(|r| r.ended)
            .map(|r| r.job)
            .collect();
        if ended.len() > KEEP_ENDED {
            for job in &ended[..ended.len() - KEEP_ENDED] {
                self.jobs.remove(job);
            }
        }
    }
}
