//! Slurm's per-user limits as a pool meets them (pure). A site caps the
//! jobs one user may have submitted (`MaxSubmitJobsPerUser` on a QOS or an
//! association) and says so only by refusing a submission. The pool
//! learns the cap from the refusal: it holds at the jobs it has, submits
//! again at once when one of them ends, and otherwise tries one job now
//! and then (the wait doubling, as the site may lift the cap), so a
//! capped pool waits quietly instead of asking Slurm every round.

use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::HoldReason;

/// The longest wait between two tries at a held cap.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A cap Slurm holds the pool at.
#[derive(Debug, Clone)]
pub(crate) struct Cap {
    /// The pool's jobs in Slurm when the cap refused another.
    pub at: usize,
    /// Slurm's words.
    pub message: String,
    /// When one job is tried again.
    pub next_try: Instant,
    /// The wait before the try after that.
    pub wait: Duration,
}

/// The pool's knowledge of Slurm's cap on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubmitCap {
    pub cap: Option<Cap>,
    /// Submissions Slurm refused for a limit, ever.
    pub refusals: u64,
}

impl SubmitCap {
    /// Slurm refused a submission for a limit while the pool had `counting`
    /// jobs: the cap is there, and the next try waits (longer each time).
    pub fn refused(&mut self, counting: usize, message: &str, first_wait: Duration, now: Instant) {
        self.refusals += 1;
        let wait = match &self.cap {
            Some(c) => c.wait.saturating_mul(2).min(MAX_WAIT),
            None => first_wait.max(Duration::from_millis(10)).min(MAX_WAIT),
        };
        if self.cap.is_none() {
            tracing::info!(jobs = counting, "Slurm's limit holds the pool: {message}");
        }
        self.cap = Some(Cap {
            at: counting,
            message: message.to_string(),
            next_try: now + wait,
            wait,
        });
    }

    /// Slurm refused an array for a limit, and half of it is tried next.
    pub fn halved(&mut self) {
        self.refusals += 1;
    }

    /// Slurm took a submission: whatever held the pool may have gone, so
    /// the next round asks for the rest.
    pub fn accepted(&mut self) {
        if self.cap.take().is_some() {
            tracing::info!("Slurm takes the pool's jobs again");
        }
    }

    /// How many of `wanted` more jobs to submit with `counting` in Slurm,
    /// and, when fewer, why.
    pub fn allow(
        &self,
        counting: usize,
        wanted: usize,
        now: Instant,
    ) -> (usize, Option<HoldReason>) {
        let Some(c) = &self.cap else {
            return (wanted, None);
        };
        if counting < c.at {
            // A job of ours ended: its place is free under the cap.
            return (wanted.min(c.at - counting), None);
        }
        if wanted == 0 {
            return (0, None);
        }
        let next_try_s = c
            .next_try
            .saturating_duration_since(now)
            .as_secs_f64()
            .round() as u64;
        let why = HoldReason::SlurmCap {
            at: c.at,
            waiting: wanted,
            next_try_s,
            slurm: c.message.clone(),
        };
        match now >= c.next_try {
            true => (1, Some(why)),
            false => (0, Some(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: &str = "QOSMaxSubmitJobPerUserLimit";

    #[test]
    fn a_cap_holds_until_a_job_ends_or_the_next_try() {
        let t0 = Instant::now();
        let mut c = SubmitCap::default();
        assert_eq!(c.allow(0, 8, t0), (8, None));
        c.refused(4, WORDS, Duration::from_secs(2), t0);
        let (n, why) = c.allow(4, 4, t0);
        assert_eq!(n, 0);
        assert_eq!(
            why,
            Some(HoldReason::SlurmCap {
                at: 4,
                waiting: 4,
                next_try_s: 2,
                slurm: WORDS.into()
            })
        );
        // One of ours ended: its place is taken at once.
        assert_eq!(c.allow(3, 4, t0).0, 1);
        // Time for a try: one job, no more.
        assert_eq!(c.allow(4, 4, t0 + Duration::from_secs(2)).0, 1);
    }

    #[test]
    fn tries_at_a_held_cap_come_ever_less_often_and_an_acceptance_ends_it() {
        let t0 = Instant::now();
        let mut c = SubmitCap::default();
        let mut waits = Vec::new();
        for _ in 0..10 {
            c.refused(4, WORDS, Duration::from_secs(2), t0);
            waits.push(c.cap.as_ref().unwrap().wait.as_secs());
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
        assert_eq!(c.refusals, 10);
        c.accepted();
        assert_eq!(c.allow(5, 3, t0), (3, None));
    }
}
