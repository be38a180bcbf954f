//! The adaptive policy: how a pool that sizes itself to its work moves its
//! target. A pure decision, `decide`, from the demand, the current target
//! and how many jobs could go now; the cluster's I/O layer gathers those
//! and applies the answer.
//!
//! The rule: up to the demand at once, unless the pool went down within the
//! cooldown; down only by jobs that are pending or whose workers have been
//! idle past the idle timeout, and not within the cooldown after going up.
//! Jobs already pending count toward the target, so a slow queue is never
//! oversubmitted.

use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::{AdaptDecision as Decision, AdaptHold as Hold, Demand as Source};

/// An adaptive pool's range, in jobs, and the memory of its last moves.
#[derive(Debug, Clone)]
pub(crate) struct Adaptive {
    pub min_jobs: usize,
    pub max_jobs: usize,
    /// How long a worker must be idle before it may go.
    pub idle_timeout: Duration,
    pub last_up: Option<Instant>,
    pub last_down: Option<Instant>,
    /// The latest decision, for the status and the log.
    pub decision: Option<Decision>,
    /// Idle running jobs the last round kept only for the cooldown after
    /// going up, and when: they cost until the next round.
    cooling: Option<(usize, Instant)>,
    /// Core-milliseconds of idle jobs kept for the cooldown so far.
    pub cooldown_core_ms: u64,
}

/// What the pool's work asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Demand {
    /// Jobs the work needs; `None` when it cannot be told (Dask silent).
    pub jobs: Option<usize>,
    /// Where the figure comes from.
    pub source: Source,
}

/// What the policy needs to know this round.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    /// The target now, in jobs.
    pub current: usize,
    /// What the work asks for.
    pub demand: Demand,
    /// Jobs that could go now: pending, unregistered, or idle long enough.
    pub removable: usize,
    /// Of those, the running ones (registered, all their workers idle
    /// long enough): a move down takes them last.
    pub idle_running: usize,
    pub now: Instant,
    pub cooldown: Duration,
    pub idle_timeout: Duration,
}

/// The jobs the work asks for, within the range (the target when it
/// cannot be told).
fn wanted(a: &Adaptive, round: &Round) -> usize {
    round
        .demand
        .jobs
        .unwrap_or(round.current)
        .clamp(a.min_jobs, a.max_jobs)
}

/// Decides this round's move for the pool `a`.
pub(crate) fn decide(a: &Adaptive, round: &Round) -> Decision {
    let current = round.current;
    let cooled =
        |last: Option<Instant>| last.is_none_or(|t| round.now.duration_since(t) >= round.cooldown);
    let wanted = wanted(a, round);
    let demand = round.demand.source.clone();
    if wanted > current {
        return if cooled(a.last_down) {
            Decision::Up {
                from: current,
                to: wanted,
                demand,
            }
        } else {
            Decision::Hold {
                at: current,
                why: Hold::CoolingAfterDown { wanted },
            }
        };
    }
    if wanted == current {
        return Decision::Hold {
            at: current,
            why: Hold::Met { demand },
        };
    }
    let to = wanted.max(current.saturating_sub(round.removable));
    let why = if to == current {
        Hold::NotIdleYet {
            wanted,
            idle_ms: millis(round.idle_timeout),
        }
    } else if !cooled(a.last_up) {
        Hold::CoolingAfterUp
    } else {
        return Decision::Down {
            from: current,
            to,
            demand,
            idle_ms: millis(round.idle_timeout),
        };
    };
    Decision::Hold { at: current, why }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The idle running jobs `decision` keeps only because the pool went up
/// within its cooldown: those a move down would have ended (it ends
/// pending and unregistered jobs first, which cost nothing).
pub(crate) fn kept_by_cooldown(a: &Adaptive, round: &Round, decision: &Decision) -> usize {
    let Decision::Hold {
        why: Hold::CoolingAfterUp,
        ..
    } = decision
    else {
        return 0;
    };
    let to = wanted(a, round).max(round.current.saturating_sub(round.removable));
    let kept = round.current.saturating_sub(to);
    let free = round.removable.saturating_sub(round.idle_running);
    kept.saturating_sub(free)
}

impl Adaptive {
    /// A pool adapting between `min_jobs` and `max_jobs`, retiring workers
    /// idle for `idle_timeout`.
    pub fn new(min_jobs: usize, max_jobs: usize, idle_timeout: Duration) -> Self {
        Adaptive {
            min_jobs,
            max_jobs: max_jobs.max(min_jobs),
            idle_timeout,
            last_up: None,
            last_down: None,
            decision: None,
            cooling: None,
            cooldown_core_ms: 0,
        }
    }

    /// Goes on counting the cooldown's idle time from `core_ms` (what the
    /// pool counted before a restart).
    pub fn counted_from(mut self, core_ms: u64) -> Self {
        self.cooldown_core_ms = core_ms;
        self
    }

    /// Counts the idle jobs the last round kept for the cooldown, each
    /// `cores` for the time since, and remembers the `kept` of this one
    /// (at `now`). Returns the core-milliseconds so far.
    pub fn count_cooldown(&mut self, kept: usize, cores: u64, now: Instant) -> u64 {
        if let Some((jobs, since)) = self.cooling.take() {
            let ms = millis(now.duration_since(since));
            let core_ms = ms.saturating_mul(jobs as u64).saturating_mul(cores);
            self.cooldown_core_ms = self.cooldown_core_ms.saturating_add(core_ms);
        }
        self.cooling = (kept > 0).then_some((kept, now));
        self.cooldown_core_ms
    }

    /// Remembers `decision`, made at `now`, and returns the new target;
    /// logs it when it differs from the last.
    pub fn apply(&mut self, decision: Decision, now: Instant) -> usize {
        match decision {
            Decision::Up { .. } => self.last_up = Some(now),
            Decision::Down { .. } => self.last_down = Some(now),
            Decision::Hold { .. } => {}
        }
        let target = decision.target();
        if self.decision.as_ref() != Some(&decision) {
            tracing::info!(adapt = %decision, "adaptive pool");
            self.decision = Some(decision);
        }
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(current: usize, jobs: Option<usize>, removable: usize, now: Instant) -> Round {
        Round {
            current,
            demand: Demand {
                jobs,
                source: Source::Dask {
                    workers: jobs.unwrap_or(0),
                },
            },
            removable,
            idle_running: removable,
            now,
            cooldown: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn grows_to_the_demand_within_the_range() {
        let a = Adaptive::new(1, 8, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(decide(&a, &round(1, Some(5), 0, t0)).target(), 5);
        assert_eq!(
            decide(&a, &round(1, Some(50), 0, t0)).target(),
            8,
            "capped at max"
        );
        assert_eq!(
            decide(&a, &round(3, Some(0), 3, t0)).target(),
            1,
            "floored at min"
        );
        let hold = decide(&a, &round(3, None, 3, t0));
        assert!(
            matches!(
                hold,
                Decision::Hold {
                    at: 3,
                    why: Hold::Met { .. }
                }
            ),
            "unknown demand holds"
        );
    }

    #[test]
    fn shrinks_only_by_what_can_go() {
        let a = Adaptive::new(0, 8, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(decide(&a, &round(6, Some(1), 2, t0)).target(), 4);
        let held = decide(&a, &round(6, Some(1), 0, t0));
        assert_eq!(
            held,
            Decision::Hold {
                at: 6,
                why: Hold::NotIdleYet {
                    wanted: 1,
                    idle_ms: 60_000
                }
            }
        );
        assert_eq!(
            held.to_string(),
            "holding 6 jobs: demand wants 1, workers not idle for 60s yet"
        );
    }

    #[test]
    fn cools_down_before_reversing() {
        let mut a = Adaptive::new(0, 8, Duration::from_secs(60));
        let t0 = Instant::now();
        let up = decide(&a, &round(0, Some(4), 0, t0));
        assert_eq!(a.apply(up, t0), 4);
        let soon = t0 + Duration::from_secs(5);
        let d = decide(&a, &round(4, Some(0), 4, soon));
        assert_eq!(
            d,
            Decision::Hold {
                at: 4,
                why: Hold::CoolingAfterUp
            }
        );
        let later = t0 + Duration::from_secs(16);
        let down = decide(&a, &round(4, Some(0), 4, later));
        assert_eq!(a.apply(down, later), 0);
        let again = decide(&a, &round(0, Some(2), 0, later + Duration::from_secs(1)));
        assert_eq!(
            again,
            Decision::Hold {
                at: 0,
                why: Hold::CoolingAfterDown { wanted: 2 }
            }
        );
        let up = decide(&a, &round(0, Some(2), 0, later + Duration::from_secs(15)));
        assert_eq!(
            up.to_string(),
            "up 0 -> 2 jobs: demand Dask wants 2 workers"
        );
    }

    #[test]
    fn idle_jobs_kept_for_the_cooldown_count_their_cores_until_it_ends() {
        let mut a = Adaptive::new(0, 8, Duration::from_secs(60));
        let t0 = Instant::now();
        let up = decide(&a, &round(0, Some(4), 0, t0));
        a.apply(up, t0);
        // 5 s on: 3 jobs could go, one of them pending (free to end): the
        // cooldown keeps 2 idle running jobs of 8 cores.
        let soon = t0 + Duration::from_secs(5);
        let mut r = round(4, Some(0), 3, soon);
        r.idle_running = 2;
        let held = decide(&a, &r);
        assert_eq!(kept_by_cooldown(&a, &r, &held), 2);
        assert_eq!(a.count_cooldown(2, 8, soon), 0, "nothing kept before");
        // 10 s later, the cooldown over: they went down.
        let later = soon + Duration::from_secs(11);
        let mut r = round(4, Some(0), 3, later);
        r.idle_running = 2;
        let down = decide(&a, &r);
        assert_eq!(kept_by_cooldown(&a, &r, &down), 0);
        assert_eq!(a.count_cooldown(0, 8, later), 2 * 8 * 11_000);
        // A hold for another reason keeps nothing for the cooldown.
        let not_idle = decide(&a, &round(4, Some(0), 0, later));
        assert_eq!(
            kept_by_cooldown(&a, &round(4, Some(0), 0, later), &not_idle),
            0
        );
        assert_eq!(
            a.count_cooldown(0, 8, later + Duration::from_secs(5)),
            176_000
        );
    }
}
