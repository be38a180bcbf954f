//! Work for the pool: tasks are programs (argv, environment, working
//! directory, cores, time limit, retry budget) with dependencies between
//! them. `engine` is the scheduler's book of tasks, `runner` runs one on a
//! worker, `graph` reads graph files and draws them.

pub mod engine;
pub mod graph;
pub mod runner;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol::WorkerId;

/// A task's number in its scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim_start_matches('t')
            .parse()
            .map(TaskId)
            .map_err(|_| format!("`{s}` is not a task id; expected one such as t12 or 12"))
    }
}

/// A dependency: a task already submitted, or one named in the same batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dep {
    /// A submitted task.
    Id(TaskId),
    /// A task of the same submission, by name.
    Name(String),
}

fn one() -> u32 {
    1
}

/// A program to run on a worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// A name, unique within its submission; dependents use it to refer to
    /// it and to its result (`{{name}}` in argv or environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The program and its arguments. `{{name}}` is replaced by the standard
    /// output (trimmed) of the dependency called `name`.
    pub argv: Vec<String>,
    /// Extra environment variables (values may hold `{{name}}` too).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory on the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Cores it needs (default 1).
    #[serde(default = "one")]
    pub cores: u32,
    /// Time limit in milliseconds: it is killed when over, and not started
    /// on a worker whose allocation ends sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_ms: Option<u64>,
    /// How many times it may run again after failing or losing its worker.
    #[serde(default)]
    pub retries: u32,
    /// Tasks that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<Dep>,
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for dependencies.
    Waiting,
    /// Ready, waiting for a worker with room.
    Ready,
    /// Running on a worker.
    Running,
    /// Exited 0.
    Succeeded,
    /// Failed (non-zero exit, time limit, lost workers, or a failed dependency).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl TaskState {
    /// Whether it will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Waiting => "waiting",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        })
    }
}

/// What running a task produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// Exit code; `None` when it was killed or could not start.
    pub exit_code: Option<i32>,
    /// Standard output, up to `runner::STDOUT_LIMIT` bytes.
    pub stdout: String,
    /// Whether the standard output was longer than what is kept.
    #[serde(default)]
    pub truncated: bool,
    /// The end of its standard error.
    pub stderr_tail: String,
    /// Why it did not run to an exit code (time limit, spawn error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it ran, in milliseconds.
    pub millis: u64,
}

/// A task as the scheduler reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its id.
    pub id: TaskId,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its program.
    pub argv: Vec<String>,
    /// Cores it needs.
    pub cores: u32,
    /// Where it is.
    pub state: TaskState,
    /// Runs so far.
    pub attempts: u32,
    /// The worker running it, or that ran it last.
    pub worker: Option<WorkerId>,
    /// Its dependencies.
    pub deps: Vec<TaskId>,
    /// Its latest output.
    pub output: Option<TaskOutput>,
    /// Why it failed or was cancelled, when not by its own exit code.
    pub reason: Option<String>,
}

/// A task handed to a worker: everything resolved, ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The task.
    pub task: TaskId,
    /// Which run of it this is (1 for the first).
    pub attempt: u32,
    /// The program, placeholders filled in.
    pub argv: Vec<String>,
    /// Its environment, placeholders filled in.
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    pub cwd: Option<String>,
    /// Cores it holds.
    pub cores: u32,
    /// Its time limit, in milliseconds.
    pub time_limit_ms: Option<u64>,
}

/// A worker's report that a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The task.
    pub task: TaskId,
    /// The run it reports on.
    pub attempt: u32,
    /// What it produced.
    pub output: TaskOutput,
}

/// Tasks and their counts by state, as the status API gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    /// How many tasks are in each state.
    pub counts: engine::TaskCounts,
    /// The tasks asked for.
    pub tasks: Vec<TaskInfo>,
}
