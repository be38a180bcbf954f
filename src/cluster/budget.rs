//! How many jobs a round may submit (pure). The books know how many the
//! pool needs; three gates may cut that, in this order, and each cut is
//! kept as a typed reason that `status` shows:
//! 1. the site limits drover applies itself (`max_pending_jobs`,
//!    `max_submit_per_minute`);
//! 2. Slurm's per-user cap, as the pool has met it (`cap.rs`);
//! 3. Slurm's scheduling passes (`pace.rs`).
//!
//! The array size is no cut: `submit.rs` sends the budget as arrays of at
//! most the site's size.

use tokio::time::Instant;

use super::cap::SubmitCap;
use super::pace::Pacer;
use super::Limits;
use crate::protocol::{HoldReason, Holdback};
use crate::slurm::JobInfo;

/// What the gates look at this round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gates<'a> {
    pub limits: &'a Limits,
    /// The pool's jobs pending in Slurm.
    pub pending: usize,
    /// Jobs it submitted in the last minute.
    pub recent: usize,
    /// Its jobs that count toward the target.
    pub counting: usize,
}

/// The jobs a round submits, and why fewer than wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Budget {
    pub count: usize,
    pub held_back: Option<Holdback>,
}

/// The jobs to submit now of `wanted`. The pacer is told every round
/// (`wanted` 0 too), as it tracks Slurm's passes over the listing.
pub(crate) fn budget(
    wanted: usize,
    gates: Gates<'_>,
    cap: &SubmitCap,
    pacer: &mut Pacer,
    listing: Option<&[JobInfo]>,
    now: Instant,
) -> Budget {
    let mut reasons = Vec::new();
    let mut count = wanted;
    if let Some(max) = gates.limits.max_pending_jobs {
        if gates.pending.saturating_add(count) > max {
            count = max.saturating_sub(gates.pending);
            reasons.push(HoldReason::PendingLimit {
                pending: gates.pending,
                max,
            });
        }
    }
    if let Some(max) = gates.limits.max_submit_per_minute {
        if gates.recent.saturating_add(count) > max {
            count = max.saturating_sub(gates.recent);
            reasons.push(HoldReason::SubmitRate {
                recent: gates.recent,
                max,
            });
        }
    }
    let (capped, why) = cap.allow(gates.counting, count, now);
    count = capped;
    reasons.extend(why);
    let paced = pacer.allow(count, listing, now);
    if paced < count {
        reasons.push(HoldReason::SchedulingPass { chunk: paced });
    }
    count = paced;
    Budget {
        count,
        held_back: (!reasons.is_empty()).then_some(Holdback {
            submitting: count,
            wanted,
            reasons,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::slurm::SchedulerConfig;

    fn gates(limits: &Limits, pending: usize, recent: usize) -> Gates<'_> {
        Gates {
            limits,
            pending,
            recent,
            counting: pending,
        }
    }

    #[test]
    fn nothing_cut_says_nothing() {
        let mut pacer = Pacer::new(SchedulerConfig::default());
        let none = Limits::default();
        let b = budget(
            8,
            gates(&none, 0, 0),
            &SubmitCap::default(),
            &mut pacer,
            None,
            Instant::now(),
        );
        assert_eq!(
            b,
            Budget {
                count: 8,
                held_back: None
            }
        );
    }

    #[test]
    fn every_gate_cuts_in_turn_and_says_so() {
        let now = Instant::now();
        let limits = Limits {
            max_pending_jobs: Some(10),
            max_submit_per_minute: Some(5),
        };
        let mut cap = SubmitCap::default();
        cap.refused(
            3,
            "QOSMaxSubmitJobPerUserLimit",
            Duration::from_secs(4),
            now,
        );
        let mut pacer = Pacer::new(SchedulerConfig::default());
        let b = budget(20, gates(&limits, 3, 2), &cap, &mut pacer, None, now);
        assert_eq!(b.count, 0);
        let held = b.held_back.unwrap();
        assert_eq!((held.submitting, held.wanted), (0, 20));
        assert!(matches!(
            held.reasons[..],
            [
                HoldReason::PendingLimit {
                    pending: 3,
                    max: 10
                },
                HoldReason::SubmitRate { recent: 2, max: 5 },
                HoldReason::SlurmCap {
                    at: 3,
                    waiting: 3,
                    next_try_s: 4,
                    ..
                },
            ]
        ));
    }

    #[test]
    fn the_pacer_cuts_to_one_pass() {
        let mut pacer = Pacer::new(SchedulerConfig::default());
        let chunk = pacer.chunk();
        let none = Limits::default();
        let b = budget(
            chunk + 5,
            gates(&none, 0, 0),
            &SubmitCap::default(),
            &mut pacer,
            None,
            Instant::now(),
        );
        assert_eq!(b.count, chunk);
        assert_eq!(
            b.held_back.unwrap().reasons,
            [HoldReason::SchedulingPass { chunk }]
        );
    }
}
