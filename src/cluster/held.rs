//! Jobs Slurm holds after their launch failed (`launch failed requeued
//! held`: the node's prolog failed, or the user's environment could not be
//! read). Slurm drains the node and requeues the job held; it never starts
//! by itself, so a pool that counted it as a coming worker would wait for
//! it forever. Per `held-jobs`, such a job is released once (it starts on
//! another node) and replaced if it is held again, or replaced at once.
//! Holds a person asked for (`JobHeldUser`, `JobHeldAdmin`) are left alone.
//! Pure decisions; `pool.rs` makes the calls.

use tokio::time::Instant;

use super::job_record::{Action, JobRecord};
use crate::config::HeldJobs;
use crate::slurm::{is_launch_failure_hold, JobRef, JobState};

/// What to do with the held jobs this round.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Unstick {
    /// Jobs to release.
    pub release: Vec<JobRef>,
    /// Jobs to cancel (their replacements follow, as they no longer count).
    pub cancel: Vec<JobRef>,
}

/// Decides for every job of the pool that Slurm holds after a failed launch.
pub(crate) fn decide<'a>(
    jobs: impl Iterator<Item = &'a mut JobRecord>,
    policy: HeldJobs,
    now: Instant,
) -> Unstick {
    let mut out = Unstick::default();
    for r in jobs {
        if !(r.counts()
            && r.state == JobState::Pending
            && is_launch_failure_hold(r.reason.as_deref()))
        {
            continue;
        }
        if policy == HeldJobs::Release && !r.released {
            r.released = true;
            // Released: its reason is Slurm's again at the next look.
            r.reason = None;
            tracing::info!(job = %r.job, "Slurm held the job after its launch failed: releasing it once");
            out.release.push(r.job);
        } else {
            replace(r, now);
            tracing::warn!(job = %r.job, "Slurm held the job after its launch failed: cancelling it for a replacement");
            out.cancel.push(r.job);
        }
    }
    out
}

/// Marks `r` as cancelled for a replacement: it no longer counts.
pub(crate) fn replace(r: &mut JobRecord, now: Instant) {
    r.action = Some(Action::Cancelling);
    r.action_at = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::JobId;

    fn held(id: u64) -> JobRecord {
        let mut r = JobRecord::new(JobRef::Job(JobId::new(id)), Instant::now());
        r.reason = Some("launch_failed_requeued_held".into());
        r
    }

    #[test]
    fn a_held_job_is_released_once_then_replaced() {
        let now = Instant::now();
        let mut jobs = [held(1)];
        let first = decide(jobs.iter_mut(), HeldJobs::Release, now);
        assert_eq!(first.release, [JobRef::Job(JobId::new(1))]);
        assert!(first.cancel.is_empty());
        assert!(
            jobs[0].counts(),
            "a released job still counts: it will start"
        );
        // Not decided again until Slurm says it is held again.
        assert_eq!(
            decide(jobs.iter_mut(), HeldJobs::Release, now),
            Unstick::default()
        );
        jobs[0].reason = Some("launch_failed_requeued_held".into());
        let second = decide(jobs.iter_mut(), HeldJobs::Release, now);
        assert_eq!(second.cancel, [JobRef::Job(JobId::new(1))]);
        assert!(!jobs[0].counts(), "a cancelled job no longer counts");
        assert_eq!(
            decide(jobs.iter_mut(), HeldJobs::Release, now),
            Unstick::default()
        );
    }

    #[test]
    fn with_replace_a_held_job_is_cancelled_at_once() {
        let mut jobs = [held(1)];
        let u = decide(jobs.iter_mut(), HeldJobs::Replace, Instant::now());
        assert_eq!((u.release.len(), u.cancel.len()), (0, 1));
    }

    #[test]
    fn holds_people_asked_for_and_running_jobs_are_left_alone() {
        let mut user = held(1);
        user.reason = Some("JobHeldUser".into());
        let mut running = held(2);
        running.state = JobState::Running;
        let mut jobs = [user, running];
        assert_eq!(
            decide(jobs.iter_mut(), HeldJobs::Replace, Instant::now()),
            Unstick::default()
        );
    }
}
