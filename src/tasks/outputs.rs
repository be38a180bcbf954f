//! Finished tasks' outputs, bounded in memory: past a byte budget the
//! oldest are spilled to files in a private directory (mode 0700, made
//! for this scheduler) and read back when asked for, so a long run's
//! results neither grow the scheduler without end nor get lost.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use crate::protocol::{TaskId, TaskOutput};

/// The default budget, in bytes.
pub const DEFAULT_MAX_OUTPUT_MEMORY: u64 = 256 << 20;

/// Where one output is.
enum Place {
    Memory(TaskOutput),
    Spilled(PathBuf),
}

/// The outputs of tasks, by task.
pub struct Outputs {
    held: HashMap<TaskId, Place>,
    /// In memory, oldest first, with their sizes.
    order: VecDeque<(TaskId, u64)>,
    bytes: u64,
    budget: u64,
    dir: Option<tempfile::TempDir>,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::with_budget(DEFAULT_MAX_OUTPUT_MEMORY)
    }
}

/// The bytes an output holds, roughly as it sits in memory.
pub fn size(o: &TaskOutput) -> u64 {
    let text = o.stdout.len()
        + o.stdout_tail.as_ref().map_or(0, String::len)
        + o.stderr_tail.len()
        + o.error.as_ref().map_or(0, String::len)
        + o.stdout_file.as_ref().map_or(0, String::len);
    text as u64 + 128
}

impl Outputs {
    /// A store keeping at most `budget` bytes in memory.
    pub fn with_budget(budget: u64) -> Outputs {
        Outputs {
            held: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
            dir: None,
        }
    }

    /// Sets the budget (spilling at the next insert if over it).
    pub fn set_budget(&mut self, budget: u64) {
        self.budget = budget;
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Keeps `output` as `task`'s (replacing an earlier one), then spills
    /// the oldest while over budget.
    pub fn insert(&mut self, task: TaskId, output: TaskOutput) {
        self.remove(task);
        let n = size(&output);
        self.bytes = self.bytes.saturating_add(n);
        self.order.push_back((task, n));
        self.held.insert(task, Place::Memory(output));
        while self.bytes > self.budget {
            let Some((oldest, n)) = self.order.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(n);
            self.spill(oldest);
        }
    }

    /// Forgets every output (their spilled files too).
    pub fn clear(&mut self) {
        for task in self.held.keys().copied().collect::<Vec<_>>() {
            self.remove(task);
        }
    }

    fn remove(&mut self, task: TaskId) {
        match self.held.remove(&task) {
            Some(Place::Memory(o)) => {
                self.bytes = self.bytes.saturating_sub(size(&o));
                self.order.retain(|(t, _)| *t != task);
            }
            Some(Place::Spilled(path)) => {
                let _ = std::fs::remove_file(path);
            }
            None => {}
        }
    }

    /// Moves `task`'s output to a file; if the file cannot be written it
    /// stays in memory (memory over budget beats a lost result).
    fn spill(&mut self, task: TaskId) {
        let path = self.file_for(task);
        let Some(Place::Memory(output)) = self.held.get(&task) else {
            return;
        };
        let written = path.and_then(|path| {
            let json = serde_json::to_vec(output).map_err(std::io::Error::other)?;
            std::fs::write(&path, json)?;
            Ok(path)
        });
        match written {
            Ok(path) => {
                self.held.insert(task, Place::Spilled(path));
            }
            Err(e) => {
                tracing::warn!(%task, error = %e, "cannot spill a task's output; keeping it in memory");
                let n = size(output);
                self.bytes = self.bytes.saturating_add(n);
                self.order.push_back((task, n));
            }
        }
    }

    fn file_for(&mut self, task: TaskId) -> std::io::Result<PathBuf> {
        if self.dir.is_none() {
            self.dir = Some(crate::private_fs::temp_dir("drover-outputs-")?);
        }
        let dir = self.dir.as_ref().expect("just made");
        Ok(dir.path().join(format!("task-{}.json", task.0)))
    }

    /// `task`'s output, read back from its file if it was spilled.
    pub fn get(&self, task: TaskId) -> Option<TaskOutput> {
        match self.held.get(&task)? {
            Place::Memory(o) => Some(o.clone()),
            Place::Spilled(path) => {
                let read = std::fs::read(path)
                    .and_then(|b| serde_json::from_slice(&b).map_err(std::io::Error::other));
                Some(read.unwrap_or_else(|e| TaskOutput {
                    error: Some(format!(
                        "its output was spilled to {} and cannot be read back: {e}",
                        path.display()
                    )),
                    ..Default::default()
                }))
            }
        }
    }

    /// The trimmed standard output of `task`, as dependents receive it.
    pub fn stdout(&self, task: TaskId) -> Option<String> {
        match self.held.get(&task)? {
            Place::Memory(o) => Some(o.stdout.trim().to_string()),
            Place::Spilled(_) => self.get(task).map(|o| o.stdout.trim().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &str) -> TaskOutput {
        TaskOutput {
            exit_code: Some(0),
            stdout: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn past_the_budget_the_oldest_are_spilled_and_read_back_whole() {
        let mut o = Outputs::with_budget(10_000);
        for i in 1..=100u64 {
            o.insert(TaskId(i), out(&format!("{i}:{}", "x".repeat(1000))));
        }
        assert!(o.bytes() <= 10_000, "{}", o.bytes());
        for i in 1..=100u64 {
            let got = o.get(TaskId(i)).unwrap();
            assert!(got.stdout.starts_with(&format!("{i}:")), "task {i}");
            assert_eq!(got.stdout.len(), format!("{i}:").len() + 1000);
        }
        assert!(
            matches!(o.held[&TaskId(1)], Place::Spilled(_)),
            "the first was spilled"
        );
        assert!(
            matches!(o.held[&TaskId(100)], Place::Memory(_)),
            "the last is in memory"
        );
        // Replacing an output (a retried task) keeps the count right.
        o.insert(TaskId(100), out("short"));
        assert_eq!(o.stdout(TaskId(100)).as_deref(), Some("short"));
        assert!(o.get(TaskId(101)).is_none());
    }
}
