//! Failures and outages: start-up failures counted and backed off from,
//! refusals, and Slurm not answering.

use tokio::time::Instant;

use super::{Books, Course, Outage, KEEP_FAILURES, MAX_BACKOFF};
use crate::protocol::{unix_ms, PoolError, StartupFailure, StopCause};
use crate::slurm::SlurmError;

impl Books {
    /// Notes an error that is no outage and no refusal (a failed listing
    /// or cancellation).
    pub fn note_error(&mut self, error: &SlurmError) {
        self.last_error = Some(PoolError::now(error));
    }

    /// Slurm refused an array of `tasks` as too large (`arrays`), or for
    /// a limit: half as many are tried next.
    pub fn array_refused(&mut self, tasks: usize, arrays: bool, error: &SlurmError) {
        match arrays {
            true => self.pacer.array_refused(tasks),
            false => self.cap.halved(),
        }
        self.note_error(error);
    }

    /// Notes that Slurm did not answer.
    pub fn slurm_unreachable(&mut self, error: &SlurmError) {
        let message = error.to_string();
        if self.outage.is_none() {
            tracing::warn!(error = %message, "Slurm is not answering: holding the pool as it is until it does");
        }
        let since_ms = self.outage.as_ref().map_or_else(unix_ms, |o| o.since_ms);
        self.outage = Some(Outage {
            since_ms,
            error: message,
        });
        self.last_error = Some(PoolError::now(error));
    }

    /// Notes that Slurm answered.
    pub fn slurm_answered(&mut self) {
        if let Some(o) = self.outage.take() {
            let secs = unix_ms().saturating_sub(o.since_ms) as f64 / 1000.0;
            tracing::info!(after_s = secs, "Slurm answers again");
        }
    }

    /// Backs off after a failure; stops submitting after too many in a row.
    pub(super) fn after_failure(&mut self) {
        let exp = self.consecutive_failures.saturating_sub(1).min(16);
        let wait = self.backoff.saturating_mul(2u32.pow(exp)).min(MAX_BACKOFF);
        self.next_submit_at = self.next_submit_at.max(Instant::now() + wait);
        if self.consecutive_failures >= self.max_failures && self.course == Course::Running {
            self.course = Course::Stopped(StopCause::StartupFailures {
                in_a_row: self.consecutive_failures,
                last: None,
            });
            self.note_last_failure();
        }
    }

    /// Names the latest failure in the reason for stopping, once.
    pub(super) fn note_last_failure(&mut self) {
        if let Course::Stopped(StopCause::StartupFailures {
            last: last @ None, ..
        }) = &mut self.course
        {
            *last = self.failures.back().cloned();
        }
    }

    /// Records the details of a start-up failure (its log tail read by the caller).
    pub fn record_failure(&mut self, failure: StartupFailure) {
        self.failures.push_back(failure);
        if self.failures.len() > KEEP_FAILURES {
            self.failures.pop_front();
        }
        if self.consecutive_failures >= self.max_failures {
            self.note_last_failure();
        }
    }

    /// A submission Slurm did not take. No answer is an outage; a limit
    /// (per-user job caps and the like) keeps the target and holds the
    /// pool at the jobs it has (see `cap`); any other refusal counts as a
    /// start-up failure.
    pub fn submit_failed(&mut self, error: &SlurmError) {
        if error.is_unreachable() {
            self.slurm_unreachable(error);
            return;
        }
        self.note_error(error);
        if error.is_transient() {
            let counting = self.jobs.values().filter(|r| r.counts()).count();
            let words = match error {
                SlurmError::Refused { message, .. } => message.replace('\n', " "),
                other => other.to_string(),
            };
            self.cap
                .refused(counting, words.trim(), self.backoff, Instant::now());
            return;
        }
        self.consecutive_failures += 1;
        self.failures_seen += 1;
        self.record_failure(StartupFailure::Refused {
            message: error.to_string(),
            must_change: crate::exit::ExitStatus::exit_code(error) == crate::exit::USAGE,
        });
        self.after_failure();
    }
}
