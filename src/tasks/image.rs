//! The book of tasks as one value, for the journal's snapshot: compacting
//! a journal replaces the log of changes that built the book with the
//! book itself, and a restart reads it back into an engine that behaves
//! as the one it was taken from (same ids, states, runs, cores held and
//! outputs).

use serde::{Deserialize, Serialize};

use super::engine::{Engine, Task};
use crate::protocol::{TaskId, TaskOutput, TaskSpec, TaskState, WorkerId};

/// One task as the snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskImage {
    pub spec: TaskSpec,
    /// Its dependencies, resolved to ids (all earlier or in its batch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<TaskId>,
    /// Dependencies not yet succeeded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waiting_on: usize,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost: u32,
    /// Runs stopped by Slurm (preempted, cancelled).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stopped: u32,
    /// Runs killed for memory after which it asked for more.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grown: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether its run holds cores on `worker`: a running task, or a
    /// cancelled one whose run is not yet reported dead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_cores: bool,
    /// Its latest output, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<TaskOutput>,
}

/// Snapshots leave out what is zero, most fields of most tasks.
fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Every task of one scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineImage {
    pub tasks: Vec<TaskImage>,
    pub max_cores: Option<u32>,
    #[serde(default)]
    pub max_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<crate::protocol::WorkerShape>,
    /// What the runs used so far (older snapshots: nothing yet).
    #[serde(default)]
    pub busy: super::BusyBook,
}

/// Why an image cannot be a book of tasks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("task {task} depends on task {dep}, which is not in the snapshot")]
    UnknownDependency { task: u64, dep: u64 },
    #[error("task {task} holds cores on no worker")]
    NoWorker { task: u64 },
}

impl Engine {
    /// The book as one value (spilled outputs are read back into it).
    pub fn image(&self) -> EngineImage {
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let id = TaskId(i as u64 + 1);
                let holds_cores = t
                    .worker
                    .and_then(|w| self.busy.get(&w))
                    .is_some_and(|held| held.tasks.contains(&id));
                TaskImage {
                    spec: t.spec.clone(),
                    deps: t.deps.clone(),
                    waiting_on: t.waiting_on,
                    state: t.state,
                    attempts: t.attempts,
                    lost: t.lost,
                    stopped: t.stopped,
                    grown: t.grown,
                    worker: t.worker,
                    reason: t.reason.clone(),
                    holds_cores,
                    output: self.outputs.get(id),
                }
            })
            .collect();
        EngineImage {
            tasks,
            busy: self.busy_time.clone(),
            max_cores: self.max_cores,
            max_memory: self.max_memory,
            shapes: self.shapes.clone(),
        }
    }

    /// Replaces the book with `image` (keeping the output budget); checks
    /// first that every id it names exists, so nothing is changed when
    /// it does not hold together.
    pub fn restore(&mut self, image: EngineImage) -> Result<(), ImageError> {
        let n = image.tasks.len() as u64;
        for (i, t) in image.tasks.iter().enumerate() {
            let task = i as u64 + 1;
            if let Some(dep) = t.deps.iter().find(|d| d.0 == 0 || d.0 > n || d.0 == task) {
                return Err(ImageError::UnknownDependency { task, dep: dep.0 });
            }
            if t.holds_cores && t.worker.is_none() {
                return Err(ImageError::NoWorker { task });
            }
        }
        self.tasks.clear();
        self.ready.clear();
        self.busy.clear();
        self.outputs.clear();
        self.max_cores = image.max_cores;
        self.max_memory = image.max_memory;
        self.shapes = image.shapes;
        self.busy_time = self.busy_time.restored(image.busy);
        for (i, t) in image.tasks.into_iter().enumerate() {
            let id = TaskId(i as u64 + 1);
            let class = self.ready.class_of(&t.spec);
            if t.state == TaskState::Ready {
                self.ready.insert(id, class);
            }
            if let (true, Some(w)) = (t.holds_cores, t.worker) {
                let c = self.ready.class_or(class, &t.spec);
                self.busy.entry(w).or_default().hold(id, &c);
            }
            if let Some(output) = t.output {
                self.outputs.insert(id, output);
            }
            self.tasks.push(Task {
                class,
                spec: t.spec,
                deps: t.deps,
                dependents: Vec::new(),
                waiting_on: t.waiting_on,
                state: t.state,
                attempts: t.attempts,
                lost: t.lost,
                stopped: t.stopped,
                grown: t.grown,
                worker: t.worker,
                reason: t.reason,
            });
        }
        for i in 0..self.tasks.len() {
            let id = TaskId(i as u64 + 1);
            for d in self.tasks[i].deps.clone() {
                self.tasks[d.0 as usize - 1].dependents.push(id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::tests::done;
    use super::*;
    use crate::protocol::Dep;
    use crate::tasks::Room;

    fn spec(name: &str, deps: &[&str]) -> TaskSpec {
        TaskSpec {
            name: Some(name.into()),
            argv: vec![
                "run".into(),
                format!("{{{{{}}}}}", deps.first().unwrap_or(&"")),
            ],
            cores: 1,
            deps: deps.iter().map(|d| Dep::Name(d.to_string())).collect(),
            ..Default::default()
        }
    }

    const W: WorkerId = WorkerId(1);
    const V: WorkerId = WorkerId(2);

    /// A book with a task in every state: succeeded (with its output
    /// spilled), failed with a dependent failed through it, running,
    /// cancelled while running (holding its core), ready, waiting.
    fn busy_book() -> Engine {
        let mut e = Engine::default();
        e.set_output_budget(300);
        e.submit(vec![
            spec("a", &[]),
            spec("b", &["a"]),
            spec("bad", &[]),
            spec("after-bad", &["bad"]),
            spec("c", &[]),
            spec("d", &[]),
            spec("e", &[]),
        ])
        .unwrap();
        let first = e.assign(W, Room::cores(3), None, 0);
        assert_eq!(first.len(), 3, "a, bad, c");
        assert!(e.complete(W, done(&first[0], 0, &"x".repeat(400))));
        assert!(e.complete(W, done(&first[1], 1, "")));
        let on_v = e.assign(V, Room::cores(2), None, 0);
        assert_eq!(on_v.len(), 2, "b and d on the other worker");
        e.cancel(on_v[1].task);
        let mut f = spec("f", &[]);
        f.deps = vec![Dep::Id(TaskId(7))];
        f.argv[1] = "{{e}}".into();
        e.submit(vec![f]).unwrap();
        e.set_max_cores(4);
        e
    }

    #[test]
    fn a_book_restored_from_its_image_is_the_same_book_and_goes_on_the_same() {
        let mut before = busy_book();
        let image = before.image();
        let json = serde_json::to_vec(&image).unwrap();
        let mut after = Engine::default();
        after
            .restore(serde_json::from_slice(&json).unwrap())
            .unwrap();
        assert_eq!(after.image(), image);
        assert_eq!(after.list(None), before.list(None));
        assert_eq!(after.counts(), before.counts());
        assert_eq!(
            after.info(TaskId(1)).unwrap().output.unwrap().stdout.len(),
            400,
            "a spilled output is in the image"
        );
        // What either does next, the other does too: the cancelled run
        // still holds its core on V, the running one on W.
        for e in [&mut before, &mut after] {
            assert!(e.assign(V, Room::cores(2), None, 0).is_empty(), "V is full");
            let more = e.assign(W, Room::cores(3), None, 0);
            assert_eq!(more.iter().map(|a| a.task).collect::<Vec<_>>(), [TaskId(7)]);
            assert!(e.complete(W, done(&more[0], 0, "7")));
            let f = e.assign(W, Room::cores(3), None, 0);
            assert_eq!(f[0].task, TaskId(8));
            assert_eq!(f[0].argv[1], "7", "f gets e's output");
            assert_eq!(
                e.worker_gone(V, "lost", 0),
                1,
                "b is requeued, the cancelled run freed"
            );
        }
        assert_eq!(after.image(), before.image());
    }

    #[test]
    fn an_image_naming_what_is_not_there_is_refused_and_changes_nothing() {
        let mut e = busy_book();
        let before = e.image();
        let mut bad = before.clone();
        bad.tasks[1].deps = vec![TaskId(99)];
        assert_eq!(
            e.restore(bad),
            Err(ImageError::UnknownDependency { task: 2, dep: 99 })
        );
        let mut bad = before.clone();
        bad.tasks[0].deps = vec![TaskId(1)];
        assert!(e.restore(bad).is_err(), "a task that depends on itself");
        let mut bad = before.clone();
        bad.tasks[4].worker = None;
        assert_eq!(e.restore(bad), Err(ImageError::NoWorker { task: 5 }));
        assert_eq!(e.image(), before);
    }
}
