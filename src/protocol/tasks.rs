//! What crosses the wire about tasks: what a driver submits, what a worker
//! is handed and reports back, and what the status API lists.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{TaskId, WorkerId};

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

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A program to run on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Memory it needs, in bytes: it runs only on a worker with this much
    /// of its memory not held by its other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// GPUs it needs: it runs only on a worker with this many GPUs not held
    /// by its other tasks, with `CUDA_VISIBLE_DEVICES` naming those it holds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
    /// Named resources it needs, and how many of each, held while it runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, u64>,
    /// The pool group it must run in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
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

impl Default for TaskSpec {
    /// No program yet, one core, no limit, no retries, no dependencies: as
    /// a submission that leaves the fields out.
    fn default() -> Self {
        TaskSpec {
            name: None,
            argv: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            cores: one(),
            memory_bytes: None,
            gpus: 0,
            resources: BTreeMap::new(),
            group: None,
            time_limit_ms: None,
            retries: 0,
            deps: Vec::new(),
        }
    }
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Every state, in a task's order.
    pub const ALL: [TaskState; 6] = [
        TaskState::Waiting,
        TaskState::Ready,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

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
    /// Standard output, or its start when it was longer than the runner
    /// keeps (256 KiB).
    pub stdout: String,
    /// Whether the standard output was longer than what is kept.
    #[serde(default)]
    pub truncated: bool,
    /// The end of a longer standard output (64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_tail: Option<String>,
    /// How long the whole standard output was, in bytes.
    #[serde(default)]
    pub stdout_bytes: u64,
    /// The worker's file holding the whole of a longer standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_file: Option<String>,
    /// The end of its standard error.
    pub stderr_tail: String,
    /// Why it did not run to an exit code (time limit, spawn error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The signal that ended it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether the kernel killed it for memory: its job's memory cgroup
    /// (Slurm's task/cgroup) was full.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
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
    /// Of those, runs lost with their worker (none of its retries used).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost: u32,
    /// Of those, runs Slurm stopped by preempting or cancelling their
    /// worker's job (none of its retries used).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stopped: u32,
    /// Of those, runs killed for memory after which it asked for more
    /// (none of its retries used).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grown: u32,
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
    /// GPUs it holds: the worker picks which of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
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

/// Counts of tasks by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    /// Waiting for dependencies.
    pub waiting: usize,
    /// Ready.
    pub ready: usize,
    /// Running.
    pub running: usize,
    /// Succeeded.
    pub succeeded: usize,
    /// Failed.
    pub failed: usize,
    /// Cancelled.
    pub cancelled: usize,
}

impl TaskCounts {
    /// Tasks that have not ended yet.
    pub fn unfinished(&self) -> usize {
        self.waiting + self.ready + self.running
    }
}

/// The most tasks one page of `GET /v1/tasks` holds, and the most ids one
/// request may name.
pub const TASK_PAGE: usize = 1000;
/// About the most bytes of output one page holds: a page ends early
/// rather than grow past it (it always holds at least one task).
pub const TASK_PAGE_BYTES: usize = 4 << 20;

/// Tasks and their counts by state, as the status API gives them: one
/// page of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    /// How many tasks are in each state.
    pub counts: TaskCounts,
    /// The tasks asked for, in order, or the first of them.
    pub tasks: Vec<TaskInfo>,
    /// Whether tasks asked for were left for a next page: ask again after
    /// the last one given (or for the ids not given yet).
    #[serde(default)]
    pub more: bool,
}

/// The most tasks one submission holds. The body limit alone let 559,220
/// tiny tasks into one request, which took the scheduler to 0.93 GB; the
/// client sends larger batches in parts.
pub const MAX_TASKS_PER_REQUEST: usize = 65_536;

/// A batch of tasks to run; dependencies may name tasks of the same batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// The tasks, in submission order; at most `MAX_TASKS_PER_REQUEST`,
    /// refused while being read beyond that.
    #[serde(deserialize_with = "at_most_max_tasks")]
    pub tasks: Vec<TaskSpec>,
}

/// Reads a list of tasks, stopping with an error at the first one past
/// `MAX_TASKS_PER_REQUEST` (before it is built).
fn at_most_max_tasks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TaskSpec>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<TaskSpec>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a list of at most {MAX_TASKS_PER_REQUEST} tasks")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let hint = seq.size_hint().unwrap_or(0).min(1024);
            let mut tasks = Vec::with_capacity(hint);
            while let Some(task) = seq.next_element()? {
                if tasks.len() == MAX_TASKS_PER_REQUEST {
                    return Err(serde::de::Error::custom(format!(
                        "tasks: at most {MAX_TASKS_PER_REQUEST} tasks per request; send the rest in another"
                    )));
                }
                tasks.push(task);
            }
            Ok(tasks)
        }
    }
    d.deserialize_seq(Bounded)
}

/// The ids given to a submitted batch, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// One id per task.
    pub ids: Vec<TaskId>,
}

/// Which tasks `GET /v1/tasks` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskListQuery {
    /// These tasks (a comma-separated list on the wire); all when absent.
    #[serde(default, with = "id_list", skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<TaskId>>,
    /// Only the counts.
    #[serde(default)]
    pub summary: bool,
    /// Without `ids`: only tasks after this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<TaskId>,
}

/// Task ids as one query parameter: `1,2,3`.
mod id_list {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::protocol::TaskId;

    pub fn serialize<S: Serializer>(ids: &Option<Vec<TaskId>>, s: S) -> Result<S::Ok, S::Error> {
        let text = ids
            .iter()
            .flatten()
            .map(|i| i.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<TaskId>>, D::Error> {
        let text = String::deserialize(d)?;
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<TaskId>().map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_submission_past_the_task_bound_is_refused_while_read() {
        use super::{SubmitRequest, MAX_TASKS_PER_REQUEST};
        let body = |n: usize| {
            let one = r#"{"argv":["true"]}"#;
            format!("{{\"tasks\":[{}]}}", vec![one; n].join(","))
        };
        let ok: SubmitRequest = serde_json::from_str(&body(MAX_TASKS_PER_REQUEST)).unwrap();
        assert_eq!(ok.tasks.len(), MAX_TASKS_PER_REQUEST);
        let err = serde_json::from_str::<SubmitRequest>(&body(MAX_TASKS_PER_REQUEST + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 65536 tasks per request"), "{err}");
    }

    use super::*;

    #[test]
    fn a_default_task_asks_for_what_an_empty_submission_does() {
        let parsed: TaskSpec = serde_json::from_str(r#"{"argv": ["true"]}"#).unwrap();
        let built = TaskSpec {
            argv: vec!["true".into()],
            ..Default::default()
        };
        assert_eq!(parsed, built);
        assert_eq!(built.cores, 1);
    }

    #[test]
    fn task_list_queries_carry_ids_as_one_parameter() {
        let q = TaskListQuery {
            ids: Some(vec![TaskId(1), TaskId(12)]),
            summary: false,
            after: None,
        };
        let text = serde_urlencoded::to_string(&q).unwrap();
        assert_eq!(text, "ids=1%2C12&summary=false");
        assert_eq!(
            serde_urlencoded::from_str::<TaskListQuery>(&text).unwrap(),
            q
        );
        let all = serde_urlencoded::from_str::<TaskListQuery>("summary=true").unwrap();
        assert_eq!((all.ids, all.summary), (None, true));
        assert!(serde_urlencoded::from_str::<TaskListQuery>("ids=1,x").is_err());
    }
}
