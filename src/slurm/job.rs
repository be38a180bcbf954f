//! What Slurm says about a job: which job (or array task), its state with
//! the pending reason, its node and its exit code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Text that is not a Slurm job or array task id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Slurm job id (such as 123) or array task (such as 120_4)")]
pub struct JobIdError(String);

/// A Slurm job id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(u64);

impl JobId {
    /// The id `n`.
    pub const fn new(n: u64) -> Self {
        JobId(n)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = JobIdError;

    /// Parses `123`, or `sbatch --parsable`'s `123;cluster`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s.trim().split(';').next().unwrap_or_default();
        id.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(JobId)
            .ok_or_else(|| JobIdError(s.trim().to_string()))
    }
}

/// One Slurm job, or one task of a job array, as `scancel` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum JobRef {
    /// A plain job: `123`.
    Job(JobId),
    /// Task `task` of the array `array`: `123_4`.
    Task {
        /// The array's job id.
        array: JobId,
        /// The task's index.
        task: u32,
    },
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobRef::Job(id) => write!(f, "{id}"),
            JobRef::Task { array, task } => write!(f, "{array}_{task}"),
        }
    }
}

impl FromStr for JobRef {
    type Err = JobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || JobIdError(s.to_string());
        match s.split_once('_') {
            Some((array, task)) => Ok(JobRef::Task {
                array: array.parse().map_err(|_| bad())?,
                task: task.parse().map_err(|_| bad())?,
            }),
            None => Ok(JobRef::Job(s.parse().map_err(|_| bad())?)),
        }
    }
}

impl From<JobRef> for String {
    fn from(j: JobRef) -> String {
        j.to_string()
    }
}

impl TryFrom<String> for JobRef {
    type Error = JobIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A job's state, as Slurm names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum JobState {
    /// Waiting for resources; see the reason.
    Pending,
    /// Allocated, nodes being readied.
    Configuring,
    /// Running.
    Running,
    /// Finishing.
    Completing,
    /// Ended with exit code 0.
    Completed,
    /// Cancelled by a user or administrator.
    Cancelled,
    /// Ended with a non-zero exit code.
    Failed,
    /// Reached its time limit.
    Timeout,
    /// Its node failed.
    NodeFail,
    /// Preempted by another job.
    Preempted,
    /// Killed for using more memory than allocated.
    OutOfMemory,
    /// Suspended.
    Suspended,
    /// Its node failed to boot.
    BootFail,
    /// Reached its deadline before starting.
    Deadline,
    /// No longer listed by Slurm although it was submitted: drover's word,
    /// not Slurm's (ended and forgotten, or lost by a controller restart).
    Vanished,
    /// Requeued, held or some state drover does not interpret.
    Other(String),
}

/// Whether a pending job's reason says Slurm holds it because its launch
/// failed (a node's prolog failed, or the user's environment could not be
/// read): `launch_failed_requeued_held` in squeue, with spaces in some
/// releases' words. Such a job never starts by itself. Holds a person
/// asked for (`JobHeldUser`, `JobHeldAdmin`) are not this.
pub fn is_launch_failure_hold(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| {
        r.trim().to_ascii_lowercase().replace(['_', ' '], "") == "launchfailedrequeuedheld"
    })
}

impl JobState {
    /// Whether the job may still run (or is running).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            JobState::Pending
                | JobState::Configuring
                | JobState::Running
                | JobState::Completing
                | JobState::Suspended
        ) || matches!(self, JobState::Other(s) if s.starts_with("REQUEUE") || s == "RESIZING" || s == "SIGNALING" || s == "STAGE_OUT")
    }

    /// Whether the job ended badly (anything but COMPLETED or CANCELLED).
    pub fn is_failure(&self) -> bool {
        !self.is_active() && !matches!(self, JobState::Completed | JobState::Cancelled)
    }

    /// Whether an end in this state before any worker registered says
    /// something is wrong with the job itself (a crash loop), rather than
    /// with the world around it (cancelled, preempted, node failure, gone).
    pub fn ended_on_its_own(&self) -> bool {
        !self.is_active()
            && !matches!(
                self,
                JobState::Cancelled | JobState::NodeFail | JobState::Preempted | JobState::Vanished
            )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Completing => "COMPLETING",
            JobState::Completed => "COMPLETED",
            JobState::Cancelled => "CANCELLED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Suspended => "SUSPENDED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::Vanished => "VANISHED",
            JobState::Other(s) => s,
        })
    }
}

impl From<String> for JobState {
    fn from(s: String) -> Self {
        s.as_str().into()
    }
}

impl From<&str> for JobState {
    fn from(s: &str) -> Self {
        // squeue may add flags after the state ("CANCELLED by 0").
        match s.split_whitespace().next().unwrap_or_default() {
            "PENDING" | "PD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" => JobState::Running,
            "COMPLETING" | "CG" => JobState::Completing,
            "COMPLETED" | "CD" => JobState::Completed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "FAILED" | "F" => JobState::Failed,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "SUSPENDED" | "S" => JobState::Suspended,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            "VANISHED" => JobState::Vanished,
            other => JobState::Other(other.to_string()),
        }
    }
}

impl From<JobState> for String {
    fn from(s: JobState) -> String {
        s.to_string()
    }
}

/// One job as Slurm reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Which job or array task.
    pub job: JobRef,
    /// Its own job id (`SLURM_JOB_ID`), once Slurm has given it one.
    pub job_id: Option<JobId>,
    /// Job name.
    pub name: String,
    /// Job comment.
    pub comment: String,
    /// State.
    pub state: JobState,
    /// Why it waits (`Resources`, `Priority`, `QOSMaxJobsPerUserLimit`...).
    pub reason: Option<String>,
    /// Node(s) it runs on.
    pub nodes: Option<String>,
    /// Exit code, once ended.
    pub exit_code: Option<i32>,
    /// While it waits: when Slurm expects to start it (Unix seconds), once
    /// its backfill scheduler has an estimate.
    #[serde(default)]
    pub expected_start: Option<u64>,
}

/// The most task indices one range expands to: Slurm's largest
/// `MaxArraySize` (4,000,001). A longer one is no Slurm's, and stops there.
const MAX_TASKS: usize = 4_000_001;

/// Expands Slurm's array task ranges (`0-3,7,9-11%4`) into task indices.
pub fn expand_tasks(spec: &str) -> Vec<u32> {
    let spec = spec.split('%').next().unwrap_or_default();
    let mut out = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        let (range, step) = match part.split_once(':') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap_or(1).max(1)),
            None => (part, 1),
        };
        match range.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    let room = MAX_TASKS.saturating_sub(out.len());
                    out.extend((a..=b).step_by(step as usize).take(room));
                }
            }
            None => {
                if let Ok(n) = range.parse() {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_failure_hold_is_told_from_holds_people_asked_for() {
        for held in [
            "launch_failed_requeued_held",
            "launch failed requeued held",
            "Launch_Failed_Requeued_Held ",
        ] {
            assert!(is_launch_failure_hold(Some(held)), "{held}");
        }
        for other in [
            None,
            Some("JobHeldUser"),
            Some("JobHeldAdmin"),
            Some("Resources"),
            Some(""),
        ] {
            assert!(!is_launch_failure_hold(other), "{other:?}");
        }
    }

    #[test]
    fn job_ids_parse_from_parsable_output() {
        assert_eq!("123".parse::<JobId>().unwrap(), JobId::new(123));
        assert_eq!(
            "77;drover-local\n".parse::<JobId>().unwrap(),
            JobId::new(77)
        );
        assert!("".parse::<JobId>().is_err());
        assert!("abc".parse::<JobId>().is_err());
    }

    #[test]
    fn job_refs_print_and_parse_like_slurm() {
        let t: JobRef = "19_3".parse().unwrap();
        assert_eq!(
            t,
            JobRef::Task {
                array: JobId::new(19),
                task: 3
            }
        );
        assert_eq!(t.to_string(), "19_3");
        assert_eq!("20".parse::<JobRef>().unwrap(), JobRef::Job(JobId::new(20)));
        assert!("x_1".parse::<JobRef>().is_err());
    }

    #[test]
    fn states_map_explicitly() {
        for (text, state) in [
            ("PENDING", JobState::Pending),
            ("CONFIGURING", JobState::Configuring),
            ("RUNNING", JobState::Running),
            ("COMPLETING", JobState::Completing),
            ("COMPLETED", JobState::Completed),
            ("CANCELLED by 0", JobState::Cancelled),
            ("FAILED", JobState::Failed),
            ("TIMEOUT", JobState::Timeout),
            ("NODE_FAIL", JobState::NodeFail),
            ("PREEMPTED", JobState::Preempted),
            ("OUT_OF_MEMORY", JobState::OutOfMemory),
            ("SUSPENDED", JobState::Suspended),
        ] {
            assert_eq!(JobState::from(text), state, "{text}");
        }
        assert!(JobState::Pending.is_active());
        assert!(JobState::Timeout.is_failure());
        assert!(!JobState::Completed.is_failure());
        assert!(!JobState::Cancelled.is_failure());
    }

    #[test]
    fn array_ranges_expand() {
        assert_eq!(expand_tasks("2-3"), vec![2, 3]);
        assert_eq!(expand_tasks("0-3,7,9-11%4"), vec![0, 1, 2, 3, 7, 9, 10, 11]);
        assert_eq!(expand_tasks("0-6:3"), vec![0, 3, 6]);
        assert_eq!(expand_tasks("0-4294967295").len(), MAX_TASKS);
    }
}
