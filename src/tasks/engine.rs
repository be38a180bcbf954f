//! The scheduler's book of tasks: dependencies, the ready queue, which
//! worker runs what with how many cores, results, retries, and failure
//! spreading to dependents. Pure logic, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::exit::{ExitStatus, USAGE};
use crate::protocol::{
    Assignment, Completion, Dep, TaskCounts, TaskId, TaskInfo, TaskOutput, TaskSpec, TaskState,
    WorkerId,
};

/// A batch of tasks refused whole, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// A task has no program.
    #[error("task {0} has an empty command")]
    EmptyCommand(String),
    /// A task asks for no cores.
    #[error("task {0} asks for 0 cores; it needs at least 1")]
    NoCores(String),
    /// Two tasks of the batch share a name.
    #[error("two tasks are named `{0}`; names must be unique")]
    DuplicateName(String),
    /// A task names a dependency that is not in the batch.
    #[error("task {task} depends on `{name}`, which is not in this submission")]
    UnknownName {
        /// The task.
        task: String,
        /// The name it gave.
        name: String,
    },
    /// A task names a task id that does not exist.
    #[error("task {task} depends on {id}, which does not exist")]
    UnknownId {
        /// The task.
        task: String,
        /// The id it gave.
        id: TaskId,
    },
    /// A task depends on itself.
    #[error("task {0} depends on itself")]
    SelfDependency(String),
    /// The batch's dependencies form a cycle.
    #[error("the dependencies form a cycle")]
    Cycle,
}

impl ExitStatus for SubmitError {
    fn exit_code(&self) -> u8 {
        match self {
            SubmitError::EmptyCommand(_)
            | SubmitError::NoCores(_)
            | SubmitError::DuplicateName(_)
            | SubmitError::UnknownName { .. }
            | SubmitError::UnknownId { .. }
            | SubmitError::SelfDependency(_)
            | SubmitError::Cycle => USAGE,
        }
    }
}

/// How many times a task goes back to the queue because its worker was
/// lost, on top of its own retry budget.
pub const LOST_WORKER_RETRIES: u32 = 3;

struct Task {
    spec: TaskSpec,
    deps: Vec<TaskId>,
    dependents: Vec<TaskId>,
    /// Dependencies not yet succeeded.
    waiting_on: usize,
    state: TaskState,
    attempts: u32,
    /// Runs lost with their worker.
    lost: u32,
    worker: Option<WorkerId>,
    output: Option<TaskOutput>,
    reason: Option<String>,
}

/// Every task of one scheduler.
#[derive(Default)]
pub struct Engine {
    tasks: Vec<Task>,
    /// Ready tasks, in submission order.
    ready: BTreeSet<TaskId>,
    /// Cores in use and tasks running, per worker.
    busy: HashMap<WorkerId, (u32, BTreeSet<TaskId>)>,
}

impl Engine {
    fn get(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get((id.0 as usize).checked_sub(1)?)
    }

    fn get_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        self.tasks.get_mut((id.0 as usize).checked_sub(1)?)
    }

    /// Adds a batch of tasks. Dependencies name tasks of the same batch or
    /// give ids of earlier ones; a batch with an unknown name, an unknown
    /// id, a duplicate name or a cycle is refused whole.
    pub fn submit(&mut self, specs: Vec<TaskSpec>) -> Result<Vec<TaskId>, SubmitError> {
        let first = self.tasks.len() as u64 + 1;
        let resolved = self.resolve(first, &specs)?;
        check_acyclic(first, &resolved)?;
        // Every task of the batch exists before any is wired, since a task
        // may name one that comes after it.
        let ids: Vec<TaskId> = (0..specs.len() as u64).map(|i| TaskId(first + i)).collect();
        for (spec, deps) in specs.into_iter().zip(resolved) {
            self.tasks.push(Task {
                spec,
                deps,
                dependents: Vec::new(),
                waiting_on: 0,
                state: TaskState::Waiting,
                attempts: 0,
                lost: 0,
                worker: None,
                output: None,
                reason: None,
            });
        }
        for &id in &ids {
            let deps = self.get(id).expect("just pushed").deps.clone();
            for d in &deps {
                self.get_mut(*d).expect("checked above").dependents.push(id);
            }
        }
        // In dependency order, so a failed earlier task fails the whole chain.
        for &id in &ids {
            let deps = self.get(id).expect("just pushed").deps.clone();
            let mut waiting_on = 0;
            let mut failed_dep = None;
            for d in &deps {
                match self.get(*d).expect("checked above").state {
                    TaskState::Succeeded => {}
                    TaskState::Failed | TaskState::Cancelled => failed_dep = Some(*d),
                    _ => waiting_on += 1,
                }
            }
            let t = self.get_mut(id).expect("just pushed");
            if t.state != TaskState::Waiting {
                continue; // already failed through an earlier dependency
            }
            t.waiting_on = waiting_on;
            if let Some(d) = failed_dep {
                let why = format!("dependency {} failed", self.describe(d));
                self.fail(id, why);
            } else if waiting_on == 0 {
                self.get_mut(id).expect("just pushed").state = TaskState::Ready;
                self.ready.insert(id);
            }
        }
        Ok(ids)
    }

    /// Checks a batch and resolves its dependencies to ids.
    fn resolve(&self, first: u64, specs: &[TaskSpec]) -> Result<Vec<Vec<TaskId>>, SubmitError> {
        let mut names: HashMap<&str, TaskId> = HashMap::new();
        for (i, s) in specs.iter().enumerate() {
            if s.argv.is_empty() {
                return Err(SubmitError::EmptyCommand(label(s, i)));
            }
            if s.cores == 0 {
                return Err(SubmitError::NoCores(label(s, i)));
            }
            if let Some(n) = &s.name {
                if names.insert(n, TaskId(first + i as u64)).is_some() {
                    return Err(SubmitError::DuplicateName(n.clone()));
                }
            }
        }
        let mut resolved: Vec<Vec<TaskId>> = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let mut deps = Vec::new();
            for d in &s.deps {
                let id = match d {
                    Dep::Name(n) => {
                        *names
                            .get(n.as_str())
                            .ok_or_else(|| SubmitError::UnknownName {
                                task: label(s, i),
                                name: n.clone(),
                            })?
                    }
                    Dep::Id(id) if self.get(*id).is_none() => {
                        return Err(SubmitError::UnknownId {
                            task: label(s, i),
                            id: *id,
                        })
                    }
                    Dep::Id(id) => *id,
                };
                if id == TaskId(first + i as u64) {
                    return Err(SubmitError::SelfDependency(label(s, i)));
                }
                if !deps.contains(&id) {
                    deps.push(id);
                }
            }
            resolved.push(deps);
        }
        Ok(resolved)
    }

    fn describe(&self, id: TaskId) -> String {
        match self.get(id).and_then(|t| t.spec.name.clone()) {
            Some(n) => format!("{n} ({id})"),
            None => id.to_string(),
        }
    }

    /// Hands `worker` (with `cores`, of which its running tasks hold some)
    /// the ready tasks that fit, in submission order, skipping those that do
    /// not fit or whose time limit would outlast the worker's allocation.
    pub fn assign(
        &mut self,
        worker: WorkerId,
        cores: u32,
        allocation_end_s: Option<u64>,
        now_ms: u64,
    ) -> Vec<Assignment> {
        let used = self.busy.get(&worker).map(|b| b.0).unwrap_or(0);
        let mut free = cores.saturating_sub(used);
        let mut chosen: Vec<TaskId> = Vec::new();
        if free == 0 {
            return Vec::new();
        }
        for &id in &self.ready {
            let t = self.get(id).expect("ready tasks exist");
            if t.spec.cores > free {
                continue;
            }
            if let (Some(limit), Some(end)) = (t.spec.time_limit_ms, allocation_end_s) {
                if now_ms + limit > end * 1000 {
                    continue;
                }
            }
            free -= t.spec.cores;
            chosen.push(id);
            if free == 0 {
                break;
            }
        }
        chosen
            .into_iter()
            .map(|id| self.start(id, worker))
            .collect()
    }

    fn start(&mut self, id: TaskId, worker: WorkerId) -> Assignment {
        self.ready.remove(&id);
        let mut env = BTreeMap::new();
        let mut values: Vec<(String, String)> = Vec::new();
        let deps = self.get(id).expect("exists").deps.clone();
        for d in deps {
            let dep = self.get(d).expect("exists");
            let out = dep
                .output
                .as_ref()
                .map(|o| o.stdout.trim().to_string())
                .unwrap_or_default();
            if let Some(name) = &dep.spec.name {
                env.insert(format!("DROVER_DEP_{}", env_name(name)), out.clone());
                values.push((format!("{{{{{name}}}}}"), out));
            }
        }
        let t = self.get_mut(id).expect("exists");
        t.state = TaskState::Running;
        t.attempts += 1;
        t.worker = Some(worker);
        let fill = |s: &str| {
            values
                .iter()
                .fold(s.to_string(), |acc, (k, v)| acc.replace(k, v))
        };
        let argv = t.spec.argv.iter().map(|a| fill(a)).collect();
        for (k, v) in &t.spec.env {
            env.insert(k.clone(), fill(v));
        }
        env.insert("DROVER_TASK_ID".into(), id.0.to_string());
        let a = Assignment {
            task: id,
            attempt: t.attempts,
            argv,
            env,
            cwd: t.spec.cwd.clone(),
            cores: t.spec.cores,
            time_limit_ms: t.spec.time_limit_ms,
        };
        let b = self.busy.entry(worker).or_default();
        b.0 += a.cores;
        b.1.insert(id);
        a
    }

    fn release(&mut self, worker: WorkerId, id: TaskId) {
        let cores = self.get(id).map(|t| t.spec.cores).unwrap_or(0);
        if let Some(b) = self.busy.get_mut(&worker) {
            if b.1.remove(&id) {
                b.0 = b.0.saturating_sub(cores);
            }
            if b.1.is_empty() {
                self.busy.remove(&worker);
            }
        }
    }

    /// Takes a worker's report; returns whether anything changed (a stale
    /// report, for a run that was already given up on, changes nothing).
    pub fn complete(&mut self, worker: WorkerId, done: Completion) -> bool {
        let Some(t) = self.get(done.task) else {
            return false;
        };
        if t.state != TaskState::Running || t.worker != Some(worker) || t.attempts != done.attempt {
            return false;
        }
        self.release(worker, done.task);
        let ok = done.output.exit_code == Some(0) && done.output.error.is_none();
        let why = done
            .output
            .error
            .clone()
            .unwrap_or_else(|| match done.output.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "killed".into(),
            });
        let t = self.get_mut(done.task).expect("exists");
        t.output = Some(done.output);
        if ok {
            t.state = TaskState::Succeeded;
            t.reason = None;
            let dependents = t.dependents.clone();
            for d in dependents {
                let dep = self.get_mut(d).expect("exists");
                if dep.state == TaskState::Waiting {
                    dep.waiting_on -= 1;
                    if dep.waiting_on == 0 {
                        dep.state = TaskState::Ready;
                        self.ready.insert(d);
                    }
                }
            }
        } else if t.attempts <= t.spec.retries + t.lost {
            t.state = TaskState::Ready;
            t.reason = Some(format!("run {} failed ({why}); retrying", t.attempts));
            self.ready.insert(done.task);
        } else {
            self.fail(done.task, why);
        }
        true
    }

    /// Fails `id` and, transitively, everything that depends on it.
    fn fail(&mut self, id: TaskId, why: String) {
        let mut stack = vec![(id, why)];
        while let Some((id, why)) = stack.pop() {
            let name = self.describe(id);
            let t = self.get_mut(id).expect("exists");
            if t.state.is_final() {
                continue;
            }
            t.state = TaskState::Failed;
            t.reason = Some(why);
            self.ready.remove(&id);
            let dependents = self.get(id).expect("exists").dependents.clone();
            for d in dependents {
                if !self.get(d).expect("exists").state.is_final() {
                    stack.push((d, format!("dependency {name} failed")));
                }
            }
        }
    }

    /// A worker is gone (lost, or left): its running tasks go back to the
    /// queue while their budget lasts. Returns how many were requeued.
    pub fn worker_gone(&mut self, worker: WorkerId, why: &str) -> usize {
        let Some((_, running)) = self.busy.remove(&worker) else {
            return 0;
        };
        let mut requeued = 0;
        for id in running {
            let t = self.get_mut(id).expect("exists");
            if t.state != TaskState::Running {
                continue;
            }
            t.lost += 1;
            if t.lost <= LOST_WORKER_RETRIES + t.spec.retries {
                t.state = TaskState::Ready;
                t.reason = Some(format!("its worker {worker} was {why}; running it again"));
                self.ready.insert(id);
                requeued += 1;
            } else {
                let msg = format!("its worker was {why}, {} times", t.lost);
                self.fail(id, msg);
            }
        }
        requeued
    }

    /// Cancels `id` (if not over) and fails what depends on it.
    pub fn cancel(&mut self, id: TaskId) -> Option<WorkerId> {
        let t = self.get(id)?;
        if t.state.is_final() {
            return None;
        }
        let worker = (t.state == TaskState::Running)
            .then_some(t.worker)
            .flatten();
        if let Some(w) = worker {
            self.release(w, id);
        }
        self.fail(id, "cancelled".into());
        self.get_mut(id).expect("exists").state = TaskState::Cancelled;
        worker
    }

    /// Cores asked for by tasks that are ready or running: the demand an
    /// adaptive pool sizes itself to.
    pub fn demand_cores(&self) -> u64 {
        self.tasks
            .iter()
            .filter(|t| matches!(t.state, TaskState::Ready | TaskState::Running))
            .map(|t| u64::from(t.spec.cores))
            .sum()
    }

    /// Whether some task waits for a worker.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// How many tasks `worker` runs.
    pub fn running_on(&self, worker: WorkerId) -> usize {
        self.busy.get(&worker).map(|b| b.1.len()).unwrap_or(0)
    }

    /// One task.
    pub fn info(&self, id: TaskId) -> Option<TaskInfo> {
        let t = self.get(id)?;
        Some(TaskInfo {
            id,
            name: t.spec.name.clone(),
            argv: t.spec.argv.clone(),
            cores: t.spec.cores,
            state: t.state,
            attempts: t.attempts,
            worker: t.worker,
            deps: t.deps.clone(),
            output: t.output.clone(),
            reason: t.reason.clone(),
        })
    }

    /// Every task, or those in `ids`.
    pub fn list(&self, ids: Option<&[TaskId]>) -> Vec<TaskInfo> {
        match ids {
            Some(ids) => ids.iter().filter_map(|id| self.info(*id)).collect(),
            None => (1..=self.tasks.len() as u64)
                .filter_map(|i| self.info(TaskId(i)))
                .collect(),
        }
    }

    /// Tasks by state.
    pub fn counts(&self) -> TaskCounts {
        let mut c = TaskCounts::default();
        for t in &self.tasks {
            match t.state {
                TaskState::Waiting => c.waiting += 1,
                TaskState::Ready => c.ready += 1,
                TaskState::Running => c.running += 1,
                TaskState::Succeeded => c.succeeded += 1,
                TaskState::Failed => c.failed += 1,
                TaskState::Cancelled => c.cancelled += 1,
            }
        }
        c
    }
}

fn label(s: &TaskSpec, i: usize) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| format!("#{i} of the submission"))
}

/// `name` as an environment variable suffix: upper case, `_` for the rest.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Refuses a batch whose in-batch dependencies form a cycle.
fn check_acyclic(first: u64, deps: &[Vec<TaskId>]) -> Result<(), SubmitError> {
    // Kahn's algorithm over the batch's own tasks.
    let n = deps.len();
    let local =
        |id: &TaskId| (id.0 >= first && id.0 < first + n as u64).then(|| (id.0 - first) as usize);
    let mut indegree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for d in ds.iter().filter_map(local) {
            indegree[i] += 1;
            out[d].push(i);
        }
    }
    let mut stack: Vec<usize> = (0..n).filter(|i| indegree[*i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = stack.pop() {
        seen += 1;
        for &j in &out[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                stack.push(j);
            }
        }
    }
    if seen == n {
        Ok(())
    } else {
        Err(SubmitError::Cycle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, argv: &[&str], deps: &[&str]) -> TaskSpec {
        TaskSpec {
            name: Some(name.into()),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cores: 1,
            deps: deps.iter().map(|d| Dep::Name(d.to_string())).collect(),
            ..Default::default()
        }
    }

    fn done(a: &Assignment, code: i32, stdout: &str) -> Completion {
        Completion {
            task: a.task,
            attempt: a.attempt,
            output: TaskOutput {
                exit_code: Some(code),
                stdout: stdout.into(),
                ..Default::default()
            },
        }
    }

    const W: WorkerId = WorkerId(1);

    #[test]
    fn dependencies_run_in_order_and_pass_results() {
        let mut e = Engine::default();
        let ids = e
            .submit(vec![
                spec("x", &["echo", "1"], &[]),
                spec("y", &["inc", "{{x}}"], &["x"]),
                spec("z", &["add", "{{y}}", "10"], &["y"]),
            ])
            .unwrap();
        let a = e.assign(W, 4, None, 0);
        assert_eq!(a.len(), 1, "only x is ready");
        assert!(e.complete(W, done(&a[0], 0, "1\n")));
        let b = e.assign(W, 4, None, 0);
        assert_eq!(b[0].argv, ["inc", "1"]);
        assert_eq!(b[0].env["DROVER_DEP_X"], "1");
        e.complete(W, done(&b[0], 0, "2"));
        let c = e.assign(W, 4, None, 0);
        assert_eq!(c[0].argv, ["add", "2", "10"]);
        e.complete(W, done(&c[0], 0, "12"));
        assert_eq!(e.info(ids[2]).unwrap().output.unwrap().stdout, "12");
    }

    #[test]
    fn a_task_may_name_one_that_comes_later_in_its_submission() {
        let mut e = Engine::default();
        let ids = e
            .submit(vec![
                spec("sum", &["add", "{{a}}"], &["a"]),
                spec("a", &["echo", "1"], &[]),
            ])
            .unwrap();
        assert_eq!(e.info(ids[0]).unwrap().state, TaskState::Waiting);
        let a = e.assign(W, 4, None, 0);
        assert_eq!(a[0].task, ids[1]);
        e.complete(W, done(&a[0], 0, "1"));
        assert_eq!(e.assign(W, 4, None, 0)[0].argv, ["add", "1"]);
    }

    #[test]
    fn a_failure_fails_its_dependents_and_nothing_else() {
        let mut e = Engine::default();
        let ids = e
            .submit(vec![
                spec("a", &["false"], &[]),
                spec("b", &["x"], &["a"]),
                spec("c", &["x"], &["b"]),
                spec("d", &["true"], &[]),
            ])
            .unwrap();
        let a = e.assign(W, 4, None, 0);
        assert_eq!(a.len(), 2);
        e.complete(W, done(&a[0], 1, ""));
        let b = e.info(ids[1]).unwrap();
        assert_eq!(b.state, TaskState::Failed);
        assert_eq!(b.reason.as_deref(), Some("dependency a (t1) failed"));
        assert_eq!(
            e.info(ids[2]).unwrap().reason.as_deref(),
            Some("dependency b (t2) failed")
        );
        assert_eq!(e.info(ids[3]).unwrap().state, TaskState::Running);
        assert_eq!(b.attempts, 0, "nothing downstream ran");
    }

    #[test]
    fn tasks_fit_cores_in_submission_order_skipping_what_cannot_fit() {
        let mut e = Engine::default();
        let mut big = spec("big", &["x"], &[]);
        big.cores = 4;
        e.submit(vec![spec("a", &["x"], &[]), big, spec("c", &["x"], &[])])
            .unwrap();
        let a = e.assign(W, 2, None, 0);
        let names: Vec<u64> = a.iter().map(|a| a.task.0).collect();
        assert_eq!(
            names,
            [1, 3],
            "the 4-core task waits for a worker with room"
        );
        assert!(e.assign(W, 2, None, 0).is_empty(), "no core left");
        assert_eq!(e.assign(WorkerId(2), 8, None, 0)[0].task, TaskId(2));
    }

    #[test]
    fn lost_workers_requeue_and_stale_reports_are_ignored() {
        let mut e = Engine::default();
        let ids = e.submit(vec![spec("a", &["x"], &[])]).unwrap();
        let first = e.assign(W, 1, None, 0);
        assert_eq!(e.worker_gone(W, "lost"), 1);
        let second = e.assign(WorkerId(2), 1, None, 0);
        assert_eq!(second[0].attempt, 2);
        assert!(
            !e.complete(W, done(&first[0], 0, "old")),
            "the lost run's report is stale"
        );
        assert!(e.complete(WorkerId(2), done(&second[0], 0, "new")));
        let info = e.info(ids[0]).unwrap();
        assert_eq!(info.state, TaskState::Succeeded);
        assert_eq!(info.output.unwrap().stdout, "new");
    }

    #[test]
    fn time_limits_keep_tasks_off_workers_whose_allocation_ends_first() {
        let mut e = Engine::default();
        let mut t = spec("long", &["x"], &[]);
        t.time_limit_ms = Some(60_000);
        e.submit(vec![t]).unwrap();
        assert!(e.assign(W, 1, Some(30), 0).is_empty());
        assert_eq!(e.assign(W, 1, Some(120), 0).len(), 1);
    }

    #[test]
    fn retries_and_bad_batches() {
        let mut e = Engine::default();
        let mut t = spec("flaky", &["x"], &[]);
        t.retries = 1;
        let ids = e.submit(vec![t]).unwrap();
        let a = e.assign(W, 1, None, 0);
        e.complete(W, done(&a[0], 3, ""));
        assert_eq!(e.info(ids[0]).unwrap().state, TaskState::Ready);
        let b = e.assign(W, 1, None, 0);
        e.complete(W, done(&b[0], 3, ""));
        assert_eq!(e.info(ids[0]).unwrap().state, TaskState::Failed);

        let cycle = vec![spec("a", &["x"], &["b"]), spec("b", &["x"], &["a"])];
        assert_eq!(e.submit(cycle).unwrap_err(), SubmitError::Cycle);
        let unknown = e.submit(vec![spec("a", &["x"], &["nope"])]).unwrap_err();
        assert!(unknown.to_string().contains("`nope`"), "{unknown}");
        assert_eq!(
            e.submit(vec![spec("a", &[], &[])]).unwrap_err(),
            SubmitError::EmptyCommand("a".into())
        );
        assert_eq!(unknown.exit_code(), USAGE);
    }
}
