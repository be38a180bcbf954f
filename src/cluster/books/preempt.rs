//! Jobs Slurm preempted: requeued (listed pending again after their
//! workers ran) or ended PREEMPTED. Counted per job and for the pool (one
//! group of a pool with groups), and remembered for `PREEMPTION_MEMORY`,
//! so that a group whose jobs keep being preempted is passed over as a
//! stalled one is (`Pool::round_after`). A requeued job keeps its place:
//! it still counts toward the pool and is not replaced as well.

use std::time::Duration;

use tokio::time::Instant;

use super::{Books, JobRecord};
use crate::slurm::JobState;

/// How long a preemption counts against its group.
pub const PREEMPTION_MEMORY: Duration = Duration::from_secs(3600);
/// At most this many preemption times are kept.
const KEEP_PREEMPTIONS: usize = 1000;

/// Whether a job listed as `now` after `was` went back to the queue: one
/// whose workers registered (so it ran) that Slurm lists pending again.
pub(super) fn requeued(was: &JobState, now: &JobState, registered: bool) -> bool {
    let waits = |s: &JobState| {
        *s == JobState::Pending || matches!(s, JobState::Other(o) if o.starts_with("REQUEUE"))
    };
    registered && waits(now) && !waits(was) && was.is_active()
}

/// Takes a listing of `r` as `now`: when it was requeued, counts it on the
/// job and says whether it was a preemption. Its workers left by their
/// own word when Slurm stopped them (preempted, or requeued by a person);
/// a worker declared lost (`worker_lost`) says its node failed instead.
pub(super) fn take_requeue(r: &mut JobRecord, now: &JobState, worker_lost: bool) -> bool {
    if !requeued(&r.state, now, r.registered) {
        return false;
    }
    // Back in the queue: it keeps its place; its tasks went back already.
    r.requeues = r.requeues.saturating_add(1);
    let why = match worker_lost {
        true => "its node failed",
        false => "preempted",
    };
    tracing::info!(job = %r.job, times = r.requeues, "Slurm requeued the job ({why}); it keeps its place in the pool");
    !worker_lost
}

impl Books {
    /// Counts one preemption at `now`.
    pub(super) fn note_preemption(&mut self, now: Instant) {
        self.preemptions_seen = self.preemptions_seen.saturating_add(1);
        self.preempted_at.push_back(now);
        while self.preempted_at.len() > KEEP_PREEMPTIONS {
            self.preempted_at.pop_front();
        }
    }

    /// Preemptions of this pool's jobs so far (requeued or ended PREEMPTED).
    pub fn preemptions(&self) -> u64 {
        self.preemptions_seen
    }

    /// Preemptions within the last `PREEMPTION_MEMORY` before `now`.
    pub fn recent_preemptions(&self, now: Instant) -> usize {
        self.preempted_at
            .iter()
            .filter(|t| now.duration_since(**t) < PREEMPTION_MEMORY)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_that_ran_and_is_listed_waiting_again_was_requeued() {
        let other = |s: &str| JobState::Other(s.into());
        assert!(requeued(&JobState::Running, &JobState::Pending, true));
        assert!(requeued(&JobState::Completing, &other("REQUEUED"), true));
        assert!(
            !requeued(&JobState::Running, &JobState::Pending, false),
            "never ran"
        );
        assert!(
            !requeued(&JobState::Pending, &JobState::Pending, true),
            "seen already"
        );
        assert!(
            !requeued(&JobState::Vanished, &JobState::Pending, true),
            "not active"
        );
        assert!(!requeued(&JobState::Running, &JobState::Running, true));
    }
}
