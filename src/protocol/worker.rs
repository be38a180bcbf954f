//! What a worker agent and its scheduler say to each other: registration,
//! the long poll that is also the heartbeat, the instructions it answers
//! with, and the farewell.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Assignment, ClusterId, Offer, TaskId, WorkerId};
use crate::config::WorkerKind;

/// Where a worker sits in Slurm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlurmPlacement {
    /// `SLURM_JOB_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// `SLURM_ARRAY_JOB_ID`, for array tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<u64>,
    /// `SLURM_ARRAY_TASK_ID`, for array tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u64>,
    /// `SLURM_STEP_ID`, when run by `srun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<u64>,
}

impl fmt::Display for SlurmPlacement {
    /// `123`, `120_4` for array tasks, `123.2` for steps, `-` outside Slurm.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.array_job_id, self.array_task_id, self.job_id) {
            (Some(a), Some(t), _) => write!(f, "{a}_{t}")?,
            (_, _, Some(j)) => write!(f, "{j}")?,
            _ => return f.write_str("-"),
        }
        if let Some(s) = self.step_id {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// What a worker tells the scheduler when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The worker's name, unique in its cluster: the job (`120_4`), with
    /// `-I` for process I of a job that runs several.
    pub name: String,
    /// Where it runs in Slurm.
    pub slurm: SlurmPlacement,
    /// The node's hostname.
    pub hostname: String,
    /// The worker's address on the chosen interface.
    pub address: String,
    /// Cores it offers.
    pub cores: u32,
    /// Memory it offers, in bytes.
    pub memory_bytes: u64,
    /// When its allocation ends (Unix seconds), if it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_end: Option<u64>,
    /// When it will stop taking tasks to leave before its time limit (Unix
    /// milliseconds), if it will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_at_ms: Option<u64>,
    /// Its process id on the node.
    pub pid: u32,
    /// What it runs: drover tasks, or a Dask worker it supervises (which
    /// takes its work from Dask, never from drover's task queue).
    #[serde(default)]
    pub kind: WorkerKind,
    /// The name of the Dask worker it supervises, in `dask` pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask_name: Option<String>,
    /// Its GPUs, named resources and group.
    #[serde(default)]
    pub offer: Offer,
}

/// The scheduler's answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The worker's id from now on.
    pub worker_id: WorkerId,
    /// The cluster it joined.
    pub cluster_id: ClusterId,
    /// How often to poll, which is also the heartbeat.
    pub heartbeat_interval_ms: u64,
}

/// The query of a poll: how long the worker is willing to wait, and whether
/// it takes tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollQuery {
    /// The longest the scheduler may hold the poll (at most one heartbeat
    /// interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// The worker drains: it takes no more tasks.
    #[serde(default)]
    pub draining: bool,
    /// The runs the worker holds: running, or ended and not yet reported
    /// (`TASK.ATTEMPT,...`, see `runs_text`). A scheduler restarted from
    /// its journal compares them with what it handed the worker: a run it
    /// handed out whose answer never arrived (it died first) is requeued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<String>,
}

/// The most runs a poll's `holding` is read for (a worker has at most as
/// many runs as cores, and cores are bounded far below this).
pub const MAX_HELD_RUNS: usize = 4096;

/// `runs` as a poll's `holding`.
pub fn runs_text(runs: &[TaskRun]) -> String {
    runs.iter()
        .map(|r| format!("{}.{}", r.task.0, r.attempt))
        .collect::<Vec<_>>()
        .join(",")
}

/// A poll's `holding` read back; `None` if any part is not `TASK.ATTEMPT`
/// or there are more than `MAX_HELD_RUNS`.
pub fn parse_runs(text: &str) -> Option<Vec<TaskRun>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = text.split(',').take(MAX_HELD_RUNS + 1).collect();
    if parts.len() > MAX_HELD_RUNS {
        return None;
    }
    parts
        .into_iter()
        .map(|p| {
            let (task, attempt) = p.split_once('.')?;
            Some(TaskRun {
                task: TaskId(task.parse().ok()?),
                attempt: attempt.parse().ok()?,
            })
        })
        .collect()
}

/// What the scheduler tells a polling worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Instruction {
    /// Nothing new: poll again after `next_poll_ms` (0: at once).
    Continue {
        /// How long to wait before the next poll. The scheduler holds only
        /// a bounded number of polls open; the other workers come back
        /// after a heartbeat interval, holding no connection meanwhile.
        #[serde(default)]
        next_poll_ms: u64,
    },
    /// Leave: finish what runs, deregister and exit successfully.
    Retire {
        /// Why, for the worker's log.
        reason: String,
        /// Kill running tasks instead of finishing them: the scheduler has
        /// already given them to other workers.
        #[serde(default)]
        abandon: bool,
    },
    /// Run these tasks.
    Run {
        /// The tasks, each with the cores it holds.
        tasks: Vec<Assignment>,
    },
    /// Kill these runs (each task's whole process group) and report them:
    /// their tasks were cancelled. Their cores stay taken until then.
    Cancel {
        /// The runs, by task and attempt.
        runs: Vec<TaskRun>,
    },
}

/// One run of a task: which task, which attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskRun {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
}

/// A worker's farewell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterRequest {
    /// Why it leaves.
    pub reason: String,
    /// How it leaves (absent from older agents: `orderly`).
    #[serde(default)]
    pub departure: Departure,
}

/// How a worker leaves, which decides what the runs it held cost them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// By its own decision or the scheduler's (retired, drained, its
    /// clock, its Dask process): a run it still held was lost with it.
    #[default]
    Orderly,
    /// Stopped from outside by a signal (Slurm's SIGTERM when the job is
    /// preempted or cancelled, a person's SIGINT): the runs it was killed
    /// in were stopped, not failed, and are requeued without using the
    /// tasks' retries.
    Stopped,
}

/// A request that workers retire, with the reason for their logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireRequest {
    /// Why (default: "asked to retire").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to "retire every worker".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireAllResponse {
    /// How many workers were asked to retire.
    pub retiring: usize,
}

/// A worker's state as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Registered and heartbeating.
    Running,
    /// Asked to retire, not yet gone.
    Retiring,
    /// Draining before its allocation ends.
    Draining,
    /// Left by itself, with a reason.
    Exited,
    /// Silent for longer than the configured bound.
    Lost,
}

impl WorkerState {
    /// Whether the worker is still there (heartbeating, possibly on its way out).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            WorkerState::Running | WorkerState::Retiring | WorkerState::Draining
        )
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkerState::Running => "running",
            WorkerState::Retiring => "retiring",
            WorkerState::Draining => "draining",
            WorkerState::Exited => "exited",
            WorkerState::Lost => "lost",
        })
    }
}

/// One worker in the status API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its id.
    pub id: WorkerId,
    /// Its name.
    pub name: String,
    /// Where it runs in Slurm.
    pub slurm: SlurmPlacement,
    /// Its node.
    pub hostname: String,
    /// Its address on the interface.
    pub address: String,
    /// Cores.
    pub cores: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// End of its allocation (Unix seconds), if known.
    pub allocation_end: Option<u64>,
    /// When it stops taking tasks to leave before its time limit (Unix ms).
    #[serde(default)]
    pub drain_at_ms: Option<u64>,
    /// State.
    pub state: WorkerState,
    /// Registration time (Unix milliseconds).
    pub registered_at_ms: u64,
    /// Last heartbeat (Unix milliseconds).
    pub last_heartbeat_ms: u64,
    /// Why it exited or was lost.
    pub exit_reason: Option<String>,
    /// When it exited or was declared lost (Unix milliseconds).
    #[serde(default)]
    pub exited_at_ms: Option<u64>,
    /// Tasks it runs now.
    #[serde(default)]
    pub running_tasks: u32,
    /// Since when it has run no task (Unix milliseconds); `None` while busy.
    #[serde(default)]
    pub idle_since_ms: Option<u64>,
    /// What it runs.
    #[serde(default)]
    pub kind: WorkerKind,
    /// The name of the Dask worker it supervises, in `dask` pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask_name: Option<String>,
    /// Its GPUs, named resources and group.
    #[serde(default)]
    pub offer: Offer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_prints_like_slurm() {
        let mut p = SlurmPlacement {
            job_id: Some(12),
            ..Default::default()
        };
        assert_eq!(p.to_string(), "12");
        p.step_id = Some(1);
        assert_eq!(p.to_string(), "12.1");
        p.array_job_id = Some(10);
        p.array_task_id = Some(2);
        assert_eq!(p.to_string(), "10_2.1");
        assert_eq!(SlurmPlacement::default().to_string(), "-");
    }

    #[test]
    fn poll_queries_round_trip_through_a_query_string() {
        let q = PollQuery {
            wait_ms: Some(500),
            draining: true,
            holding: None,
        };
        let text = serde_urlencoded::to_string(&q).unwrap();
        assert_eq!(text, "wait_ms=500&draining=true");
        assert_eq!(serde_urlencoded::from_str::<PollQuery>(&text).unwrap(), q);
        let runs = vec![
            TaskRun {
                task: TaskId(12),
                attempt: 1,
            },
            TaskRun {
                task: TaskId(7),
                attempt: 3,
            },
        ];
        let held = PollQuery {
            holding: Some(runs_text(&runs)),
            ..q
        };
        let text = serde_urlencoded::to_string(&held).unwrap();
        let back = serde_urlencoded::from_str::<PollQuery>(&text).unwrap();
        assert_eq!(parse_runs(back.holding.as_deref().unwrap()), Some(runs));
        assert_eq!(parse_runs(""), Some(vec![]));
        assert_eq!(parse_runs("1.1,x"), None);
        assert_eq!(parse_runs(&vec!["1.1"; MAX_HELD_RUNS + 1].join(",")), None);
    }
}
