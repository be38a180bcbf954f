//! How a job that left Slurm's listing ended, from Slurm's accounting.
//!
//! `squeue` keeps an ended job for `MinJobAge` (300 s by default, often
//! less at busy sites); a job that ended and left it between two looks, or
//! while the pool was away (a restart from its journal), would otherwise be
//! "gone" with no state. So each round, every such job of every group is
//! looked up with one `sacct` call (`Slurm::fates`), and its record takes
//! accounting's state, exit code, signal, reason, elapsed time and memory.
//! Without accounting it is marked unknown at once; a job accounting has
//! no record of is asked about for `PATIENCE` (slurmdbd records an end a
//! moment after it happens, later when it is busy), then marked
//! unrecorded: nothing loops on it. A round without Slurm asks nothing.
//! Pure decisions; the call is made by the reconcile loop (`rounds.rs`).

use std::time::Duration;

use tokio::time::Instant;

use super::job_record::{EndLookup, JobRecord};
use crate::protocol::JobEnd;
use crate::slurm::JobFate;

/// How long a job is asked about before it is taken as unrecorded.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// What accounting answered this round.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer<'a> {
    /// Its records of the jobs it knows.
    Fates(&'a [JobFate]),
    /// Slurm keeps no accounting (or this backend cannot read it).
    NoAccounting,
    /// The call failed (Slurm answered, with an error).
    Failed,
}

/// Whether `r` waits for accounting.
pub(crate) fn wanted(r: &JobRecord) -> bool {
    matches!(r.end, EndLookup::Asking { .. })
}

/// Takes `answer` into `r`, if it waits for one; returns a line for the
/// log when its end became known.
pub(crate) fn take(r: &mut JobRecord, answer: Answer<'_>, now: Instant) -> Option<String> {
    let EndLookup::Asking { since } = r.end else {
        return None;
    };
    let fate = match answer {
        Answer::Fates(fates) => fates
            .iter()
            .find(|f| f.job == r.job && !f.state.is_active()),
        Answer::NoAccounting => {
            r.end = EndLookup::Known(JobEnd::Unknown);
            return Some(format!(
                "job {} left Slurm's listing; Slurm keeps no accounting, so how it ended is unknown",
                r.job
            ));
        }
        Answer::Failed => None,
    };
    let Some(fate) = fate else {
        let waited = now.saturating_duration_since(since);
        if waited < PATIENCE {
            return None;
        }
        r.end = EndLookup::Known(JobEnd::Unrecorded);
        return Some(format!(
            "job {} left Slurm's listing and its accounting had no end for it within {} s",
            r.job,
            waited.as_secs()
        ));
    };
    r.state = fate.state.clone();
    r.exit_code = fate.exit_code;
    if fate.reason.is_some() {
        r.reason = fate.reason.clone();
    }
    if fate.nodes.is_some() {
        r.node = fate.nodes.clone();
    }
    r.end = EndLookup::Known(JobEnd::Sacct {
        signal: fate.signal,
        cancelled_by: fate.cancelled_by,
        elapsed_s: fate.elapsed.map(|d| d.as_secs()),
        max_rss_bytes: fate.max_rss,
    });
    let code = fate
        .exit_code
        .map(|c| format!(", exit code {c}"))
        .unwrap_or_default();
    let signal = fate
        .signal
        .map(|s| format!(", signal {s}"))
        .unwrap_or_default();
    Some(format!(
        "job {} ended {}{code}{signal} (from Slurm's accounting)",
        r.job, fate.state
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::{JobId, JobRef, JobState};

    fn asking(id: u64) -> JobRecord {
        let mut r = JobRecord::new(JobRef::Job(JobId::new(id)), Instant::now());
        r.state = JobState::Vanished;
        r.end = EndLookup::Asking {
            since: Instant::now(),
        };
        r
    }

    fn fate(id: u64, state: JobState) -> JobFate {
        JobFate {
            job: JobRef::Job(JobId::new(id)),
            state,
            cancelled_by: None,
            exit_code: Some(0),
            signal: Some(9),
            reason: Some("OutOfMemory".into()),
            elapsed: Some(Duration::from_secs(42)),
            max_rss: Some(1 << 30),
            nodes: Some("node2".into()),
        }
    }

    #[test]
    fn accounting_gives_the_state_and_what_only_it_keeps() {
        let mut r = asking(7);
        assert!(wanted(&r));
        let fates = [fate(6, JobState::Failed), fate(7, JobState::OutOfMemory)];
        let line = take(&mut r, Answer::Fates(&fates), Instant::now()).unwrap();
        assert_eq!(r.state, JobState::OutOfMemory);
        assert_eq!(r.node.as_deref(), Some("node2"));
        assert_eq!(r.reason.as_deref(), Some("OutOfMemory"));
        assert_eq!(
            r.end,
            EndLookup::Known(JobEnd::Sacct {
                signal: Some(9),
                cancelled_by: None,
                elapsed_s: Some(42),
                max_rss_bytes: Some(1 << 30),
            })
        );
        assert!(
            line.contains("job 7 ended OUT_OF_MEMORY, exit code 0, signal 9"),
            "{line}"
        );
        assert!(!wanted(&r));
        // Known once: a later answer changes nothing.
        assert_eq!(take(&mut r, Answer::NoAccounting, Instant::now()), None);
    }

    #[test]
    fn without_accounting_the_end_is_unknown_at_once() {
        let mut r = asking(7);
        assert!(take(&mut r, Answer::NoAccounting, Instant::now()).is_some());
        assert_eq!(r.end, EndLookup::Known(JobEnd::Unknown));
        assert_eq!(r.state, JobState::Vanished);
    }

    #[test]
    fn a_job_accounting_does_not_know_or_still_runs_is_asked_about_for_a_while() {
        let mut r = asking(7);
        let EndLookup::Asking { since } = r.end else {
            unreachable!()
        };
        let running = [fate(7, JobState::Running)];
        let answers = [Answer::Fates(&[]), Answer::Failed, Answer::Fates(&running)];
        for (i, answer) in answers.into_iter().enumerate() {
            let now = since + PATIENCE / 4 * u32::try_from(i).unwrap();
            assert_eq!(take(&mut r, answer, now), None);
            assert_eq!(r.end, EndLookup::Asking { since });
        }
        assert!(take(&mut r, Answer::Failed, since + PATIENCE).is_some());
        assert_eq!(r.end, EndLookup::Known(JobEnd::Unrecorded));
        assert!(!wanted(&r));
    }

    #[test]
    fn a_listed_job_is_never_asked_about() {
        let mut r = JobRecord::new(JobRef::Job(JobId::new(3)), Instant::now());
        assert!(!wanted(&r));
        assert_eq!(take(&mut r, Answer::NoAccounting, Instant::now()), None);
        assert_eq!(r.end, EndLookup::Listed);
    }
}
