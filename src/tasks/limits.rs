//! What one task may ask for, and what the pool's largest worker has:
//! numbers no run could honour are refused at submission, before any
//! arithmetic sees them, and tasks that no worker could ever hold fail
//! with why once the pool says how large its workers are.

use super::engine::{label, Engine};
use super::error::SubmitError;
use super::fit;
use crate::protocol::{
    check_name, check_resources, TaskId, TaskSpec, TaskState, WorkerShape, MAX_GPUS,
};

/// The most cores one task may ask for.
pub const MAX_TASK_CORES: u32 = 65_536;
/// The longest time limit, in milliseconds: a year.
pub const MAX_TIME_LIMIT_MS: u64 = 366 * 24 * 3600 * 1000;
/// The most retries one task may ask for.
pub const MAX_RETRIES: u32 = 1000;
/// The most memory one task may ask for: a pebibyte.
pub const MAX_TASK_MEMORY: u64 = 1 << 50;

impl Engine {
    /// Refuses numbers no run could honour, before any arithmetic sees them.
    pub(super) fn check_bounds(&self, s: &TaskSpec, i: usize) -> Result<(), SubmitError> {
        let out = |field, value: u64, accepted: String| SubmitError::OutOfRange {
            task: label(s, i),
            field,
            value,
            accepted,
        };
        if s.cores > MAX_TASK_CORES {
            return Err(out(
                "cores",
                s.cores.into(),
                format!("1 to {MAX_TASK_CORES}"),
            ));
        }
        if let Some(max) = self.max_cores.filter(|m| s.cores > *m) {
            return Err(SubmitError::TooManyCores {
                task: label(s, i),
                cores: s.cores,
                max,
            });
        }
        if let Some(bytes) = s.memory_bytes {
            if bytes == 0 || bytes > MAX_TASK_MEMORY {
                let accepted = format!("1 to {MAX_TASK_MEMORY} bytes (a pebibyte)");
                return Err(out("memory_bytes", bytes, accepted));
            }
            if let Some(max) = self.max_memory.filter(|m| bytes > *m) {
                return Err(SubmitError::TooMuchMemory {
                    task: label(s, i),
                    asked: human(bytes),
                    max: human(max),
                });
            }
        }
        if let Some(ms) = s
            .time_limit_ms
            .filter(|t| *t == 0 || *t > MAX_TIME_LIMIT_MS)
        {
            let accepted = format!("1 to {MAX_TIME_LIMIT_MS} milliseconds (a year)");
            return Err(out("time_limit_ms", ms, accepted));
        }
        if s.retries > MAX_RETRIES {
            return Err(out(
                "retries",
                s.retries.into(),
                format!("0 to {MAX_RETRIES}"),
            ));
        }
        if s.gpus > MAX_GPUS {
            return Err(out("gpus", s.gpus.into(), format!("0 to {MAX_GPUS}")));
        }
        let bad = |error| SubmitError::BadResource {
            task: label(s, i),
            error,
        };
        check_resources("resources", &s.resources).map_err(bad)?;
        if let Some(g) = &s.group {
            check_name("group", g).map_err(bad)?;
        }
        if let Some(why) = fit::unfit(s, &self.shapes) {
            return Err(SubmitError::Unfit {
                task: label(s, i),
                why,
            });
        }
        Ok(())
    }

    /// The pool's worker shapes, one per group (empty until it says).
    pub fn shapes(&self) -> &[WorkerShape] {
        &self.shapes
    }

    /// Records the pool's worker shapes (one per group): tasks none of
    /// them could hold are refused from now on, and those already queued
    /// fail with the reason. Returns how many failed.
    pub fn set_shapes(&mut self, shapes: Vec<WorkerShape>) -> usize {
        self.shapes = shapes;
        let shapes = self.shapes.clone();
        self.fail_unfit(|s| {
            fit::unfit(s, &shapes).map(|why| format!("{why}; no worker could ever run it"))
        })
    }

    /// Records the cores of the pool's largest worker: tasks asking for
    /// more are refused from now on, and those already queued fail with
    /// the reason. Returns how many failed.
    pub fn set_max_cores(&mut self, max: u32) -> usize {
        self.max_cores = Some(max);
        self.fail_unfit(|s| {
            (s.cores > max).then(|| {
                format!(
                    "it asks for {} cores, but the pool's workers have {max}; no worker could ever run it",
                    s.cores
                )
            })
        })
    }

    /// Records the memory of the pool's largest worker, as
    /// `set_max_cores` does its cores.
    pub fn set_max_memory(&mut self, max: u64) -> usize {
        self.max_memory = Some(max);
        self.fail_unfit(|s| {
            s.memory_bytes.filter(|m| *m > max).map(|m| {
                format!(
                    "it asks for {} of memory, but the pool's workers have {}; no worker could ever run it",
                    human(m),
                    human(max)
                )
            })
        })
    }

    /// Fails every queued task that `unfit` gives a reason for.
    fn fail_unfit(&mut self, unfit: impl Fn(&TaskSpec) -> Option<String>) -> usize {
        let never: Vec<(TaskId, String)> = self
            .ready
            .iter()
            .chain(
                self.tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.state == TaskState::Waiting)
                    .map(|(i, _)| TaskId(i as u64 + 1)),
            )
            .filter_map(|id| Some((id, unfit(&self.get(id)?.spec)?)))
            .collect();
        let failed = never.len();
        for (id, why) in never {
            self.fail(id, why);
        }
        failed
    }
}

/// Bytes as people read them (`1.5GiB`).
fn human(bytes: u64) -> String {
    crate::config::Memory::from_bytes(bytes).human()
}
