//! Where a pool stands, as typed values on the wire: its phase, why it
//! submits fewer jobs than it needs, what adapting decided, and its last
//! error. Code and tests read these values; the sentence a person reads is
//! written once, by the `Display` impls here, at the edge (the CLI, the
//! status page, Python).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::slurm::{JobRef, JobState};

/// What the pool's loop does with its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum PoolPhase {
    /// Submitting and cancelling toward the target.
    #[default]
    Running,
    /// Slurm does not answer: the pool submits and cancels nothing and
    /// keeps its workers until it does.
    SlurmUnreachable {
        /// Since when (Unix milliseconds).
        since_ms: u64,
        /// The latest error, in Slurm's words.
        error: String,
    },
    /// Submitting stopped; asking for a size again retries.
    Stopped { cause: StopCause },
    /// Closing: workers retire and the jobs are cancelled.
    Closing,
}

/// Why a pool has a job fewer than it asked for: a job that ended before
/// any of its workers registered, or a submission Slurm refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StartupFailure {
    /// The job ended before registering.
    JobEnded {
        /// The job.
        job: JobRef,
        /// Its final Slurm state.
        state: JobState,
        /// Its exit code.
        exit_code: Option<i32>,
        /// The last lines of its logs.
        log_tail: String,
    },
    /// Slurm refused the job.
    Refused {
        /// Slurm's words.
        message: String,
        /// Whether it refused what the job asks for (its partition,
        /// account, QOS or size), which no retry changes.
        #[serde(default)]
        must_change: bool,
    },
}

impl StartupFailure {
    /// The end of the job's logs, or Slurm's refusal.
    pub fn details(&self) -> &str {
        match self {
            StartupFailure::JobEnded { log_tail, .. } => log_tail,
            StartupFailure::Refused { message, .. } => message,
        }
    }
}

impl fmt::Display for StartupFailure {
    /// In one line: "job 12 ended FAILED with exit code 3 before its
    /// worker registered", or "Slurm refused the job: ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupFailure::JobEnded {
                job,
                state,
                exit_code,
                ..
            } => {
                write!(f, "job {job} ended {state}")?;
                if let Some(c) = exit_code {
                    write!(f, " with exit code {c}")?;
                }
                f.write_str(" before its worker registered")
            }
            StartupFailure::Refused { message, .. } => {
                let first = message.lines().next().unwrap_or_default();
                write!(f, "Slurm refused the job: {first}")
            }
        }
    }
}

/// Why a pool stopped submitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopCause {
    /// Its jobs failed to start this many times in a row.
    StartupFailures {
        in_a_row: u32,
        /// The latest of them, once known.
        last: Option<StartupFailure>,
    },
}

/// Why a round submitted fewer jobs than the pool needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdback {
    /// Jobs submitted this round.
    pub submitting: usize,
    /// Jobs the pool needs.
    pub wanted: usize,
    /// Each cut, in the order they were made.
    pub reasons: Vec<HoldReason>,
}

/// One cut of a round's submissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HoldReason {
    /// The site's `max_pending_jobs` (drover's own limit).
    PendingLimit { pending: usize, max: usize },
    /// The site's `max_submit_per_minute` (drover's own limit).
    SubmitRate { recent: usize, max: usize },
    /// Slurm refused a submission for a per-user limit: the pool holds at
    /// `at` jobs and tries one more now and then.
    SlurmCap {
        at: usize,
        waiting: usize,
        /// Seconds to the next try; 0: one is tried now.
        next_try_s: u64,
        /// Slurm's words.
        slurm: String,
    },
    /// Jobs go in chunks of one scheduling pass of Slurm's: `chunk` now,
    /// or none until the last chunk has been through its pass.
    SchedulingPass { chunk: usize },
}

/// An adaptive pool: its range and its latest decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptStatus {
    pub min_workers: usize,
    pub max_workers: usize,
    pub decision: Option<AdaptDecision>,
}

/// What the work asks of a pool that adapts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Demand {
    /// Ready and running tasks ask for these.
    Tasks { cores: u64, memory: u64, gpus: u64 },
    /// Dask's adaptive target.
    Dask { workers: usize },
    /// Dask did not say.
    DaskUnknown,
}

/// What an adaptive pool does about its size this round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "move", rename_all = "snake_case")]
pub enum AdaptDecision {
    /// Grow to `to` jobs.
    Up {
        from: usize,
        to: usize,
        demand: Demand,
    },
    /// Shrink to `to` jobs: pending ones, or ones idle past `idle_ms`.
    Down {
        from: usize,
        to: usize,
        demand: Demand,
        idle_ms: u64,
    },
    /// Stay, and why.
    Hold { at: usize, why: AdaptHold },
}

/// Why an adaptive pool stays at its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdaptHold {
    /// The demand is met.
    Met { demand: Demand },
    /// Up would be wanted, but the pool went down within the cooldown.
    CoolingAfterDown { wanted: usize },
    /// Down would be wanted, but the pool went up within the cooldown.
    CoolingAfterUp,
    /// Down would be wanted, but no worker has been idle long enough.
    NotIdleYet { wanted: usize, idle_ms: u64 },
}

/// The pool's last error: a refused submission or a failed Slurm call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolError {
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// The error, with Slurm's own words.
    pub error: String,
}

impl AdaptDecision {
    /// The target, in jobs, it leads to.
    pub fn target(&self) -> usize {
        match self {
            AdaptDecision::Up { to, .. } | AdaptDecision::Down { to, .. } => *to,
            AdaptDecision::Hold { at, .. } => *at,
        }
    }
}

impl PoolError {
    /// `error`, now.
    pub fn now(error: impl fmt::Display) -> PoolError {
        PoolError {
            at_ms: super::unix_ms(),
            error: error.to_string(),
        }
    }
}

impl fmt::Display for PoolPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolPhase::Running => f.write_str("running"),
            PoolPhase::SlurmUnreachable { error, .. } => write!(
                f,
                "Slurm is not answering ({error}); submitting and cancelling nothing until it does"
            ),
            PoolPhase::Stopped { cause } => write!(f, "{cause}"),
            PoolPhase::Closing => f.write_str("closing"),
        }
    }
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopCause::StartupFailures { in_a_row, last } => {
                write!(
                    f,
                    "stopped submitting after {in_a_row} consecutive start-up failures; scale again to retry."
                )?;
                match last {
                    Some(last) => write!(f, " The last: {last}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for Holdback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<String> = self.reasons.iter().map(ToString::to_string).collect();
        write!(
            f,
            "submitting {} of {} jobs now: {}",
            self.submitting,
            self.wanted,
            reasons.join("; ")
        )
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::PendingLimit { pending, max } => {
                write!(f, "{pending} pending of at most {max}")
            }
            HoldReason::SubmitRate { recent, max } => {
                write!(f, "{recent} submitted in the last minute of at most {max}")
            }
            HoldReason::SlurmCap {
                at,
                waiting,
                next_try_s,
                slurm,
            } => {
                write!(
                    f,
                    "Slurm's limit holds the pool at {at} jobs, {waiting} more wait; "
                )?;
                match next_try_s {
                    0 => f.write_str("trying one now")?,
                    s => write!(f, "trying again in {s}s")?,
                }
                write!(f, " (Slurm: {slurm})")
            }
            HoldReason::SchedulingPass { chunk: 0 } => {
                f.write_str("waiting for Slurm's scheduling pass over the last chunk")
            }
            HoldReason::SchedulingPass { chunk } => {
                write!(f, "{chunk} at a time, one scheduling pass of Slurm's")
            }
        }
    }
}

impl fmt::Display for Demand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Demand::Tasks {
                cores,
                memory,
                gpus,
            } => {
                write!(f, "{cores} cores")?;
                if *memory > 0 {
                    let human = crate::config::Memory::from_bytes(*memory).human();
                    write!(f, ", {human}")?;
                }
                if *gpus > 0 {
                    write!(f, ", {gpus} GPUs")?;
                }
                f.write_str(" in ready and running tasks")
            }
            Demand::Dask { workers } => write!(f, "Dask wants {workers} workers"),
            Demand::DaskUnknown => f.write_str("Dask's target unknown"),
        }
    }
}

impl fmt::Display for AdaptDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |ms: &u64| std::time::Duration::from_millis(*ms);
        match self {
            AdaptDecision::Up { from, to, demand } => {
                write!(f, "up {from} -> {to} jobs: demand {demand}")
            }
            AdaptDecision::Down {
                from,
                to,
                demand,
                idle_ms,
            } => write!(
                f,
                "down {from} -> {to} jobs: demand {demand}; idle longer than {:?} or pending",
                secs(idle_ms)
            ),
            AdaptDecision::Hold { at, why } => match why {
                AdaptHold::Met { demand } => write!(f, "holding {at} jobs: demand {demand}"),
                AdaptHold::CoolingAfterDown { wanted } => write!(
                    f,
                    "holding {at} jobs: demand wants {wanted}, cooling down after a scale-down"
                ),
                AdaptHold::CoolingAfterUp => {
                    write!(f, "holding {at} jobs: cooling down after a scale-up")
                }
                AdaptHold::NotIdleYet { wanted, idle_ms } => write!(
                    f,
                    "holding {at} jobs: demand wants {wanted}, workers not idle for {:?} yet",
                    secs(idle_ms)
                ),
            },
        }
    }
}

impl fmt::Display for AdaptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{} workers", self.min_workers, self.max_workers)?;
        match &self.decision {
            Some(d) => write!(f, "; {d}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_travel_as_tagged_values_and_read_as_one_sentence() {
        let stopped = PoolPhase::Stopped {
            cause: StopCause::StartupFailures {
                in_a_row: 3,
                last: None,
            },
        };
        let json = serde_json::to_value(&stopped).unwrap();
        assert_eq!(json["phase"], "stopped");
        assert_eq!(json["cause"]["kind"], "startup_failures");
        assert_eq!(serde_json::from_value::<PoolPhase>(json).unwrap(), stopped);
        assert_eq!(
            stopped.to_string(),
            "stopped submitting after 3 consecutive start-up failures; scale again to retry."
        );
        let held = Holdback {
            submitting: 0,
            wanted: 4,
            reasons: vec![HoldReason::SlurmCap {
                at: 4,
                waiting: 4,
                next_try_s: 8,
                slurm: "QOSMaxSubmitJobPerUserLimit".into(),
            }],
        };
        let text = held.to_string();
        assert!(text.starts_with("submitting 0 of 4 jobs now: "), "{text}");
        // Said once: no reason repeats the frame around it.
        assert_eq!(text.matches("submitting").count(), 1, "{text}");
        assert!(text.contains("trying again in 8s"), "{text}");
    }

    #[test]
    fn failures_read_as_one_line() {
        let ended = StartupFailure::JobEnded {
            job: "12".parse().unwrap(),
            state: JobState::Failed,
            exit_code: Some(3),
            log_tail: "boom".into(),
        };
        assert_eq!(
            ended.to_string(),
            "job 12 ended FAILED with exit code 3 before its worker registered"
        );
        let refused = StartupFailure::Refused {
            message: "sbatch: error: invalid partition specified: x\nmore".into(),
            must_change: true,
        };
        assert_eq!(
            refused.to_string(),
            "Slurm refused the job: sbatch: error: invalid partition specified: x"
        );
    }

    #[test]
    fn an_adaptive_status_says_its_range_and_its_move() {
        let a = AdaptStatus {
            min_workers: 0,
            max_workers: 8,
            decision: Some(AdaptDecision::Up {
                from: 0,
                to: 2,
                demand: Demand::Tasks {
                    cores: 4,
                    memory: 0,
                    gpus: 0,
                },
            }),
        };
        assert_eq!(
            a.to_string(),
            "0..8 workers; up 0 -> 2 jobs: demand 4 cores in ready and running tasks"
        );
    }
}
