//! The scheduler's book of tasks: dependencies, the ready queue, which
//! worker runs what with how many cores, results, retries, and failure
//! spreading to dependents. Pure logic, no I/O.

use std::collections::{BTreeMap, HashMap};

use super::busy::BusyBook;
pub use super::error::SubmitError;
use super::fit::{Free, Held, Room};
use super::outputs::{self, Outputs};
use super::placeholders;
use super::ready::Ready;
use crate::protocol::{
    Assignment, Completion, Dep, TaskCounts, TaskId, TaskInfo, TaskSpec, TaskState, WorkerId,
    TASK_PAGE, TASK_PAGE_BYTES,
};

/// How many times a task goes back to the queue because its worker was
/// lost, on top of its own retry budget.
pub const LOST_WORKER_RETRIES: u32 = 3;
/// How many runs of a task Slurm may stop (its worker's job preempted or
/// cancelled) before further stops count as lost runs: a preemption is
/// not the task's fault and uses none of its retries, but a task whose
/// every run is stopped must still end some day.
pub const STOPPED_RUNS_FREE: u32 = 10;

pub(super) struct Task {
    pub(super) spec: TaskSpec,
    pub(super) deps: Vec<TaskId>,
    pub(super) dependents: Vec<TaskId>,
    /// Dependencies not yet succeeded.
    pub(super) waiting_on: usize,
    pub(super) state: TaskState,
    pub(super) attempts: u32,
    /// Runs lost with their worker.
    pub(super) lost: u32,
    /// Runs stopped by Slurm with their worker (up to `STOPPED_RUNS_FREE`).
    pub(super) stopped: u32,
    /// Runs killed for memory after which it asked for more.
    pub(super) grown: u32,
    pub(super) worker: Option<WorkerId>,
    pub(super) reason: Option<String>,
    /// Its class in the ready queue (what it asks for).
    pub(super) class: u32,
}

/// Every task of one scheduler.
#[derive(Default)]
pub struct Engine {
    pub(super) tasks: Vec<Task>,
    /// Ready tasks, in submission order and by what they ask for.
    pub(super) ready: Ready,
    /// What runs on each worker, and the cores and memory it holds.
    pub(super) busy: HashMap<WorkerId, Held>,
    /// Cores of the pool's largest worker, once the pool says.
    pub(super) max_cores: Option<u32>,
    /// Memory of the pool's largest worker, once the pool says.
    pub(super) max_memory: Option<u64>,
    /// The pool's workers, per group, once the pool says: a task none of
    /// them could hold is refused.
    pub(super) shapes: Vec<crate::protocol::WorkerShape>,
    /// The latest output of each task that ran.
    pub(super) outputs: Outputs,
    /// How much more memory (in hundredths) a task killed for memory asks
    /// for next time; `None`: off (`memory_growth.rs`).
    pub(super) memory_growth: Option<u32>,
    /// What the runs used, per group (`busy.rs`).
    pub(super) busy_time: BusyBook,
}

impl Engine {
    pub(super) fn get(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get((id.0 as usize).checked_sub(1)?)
    }

    pub(super) fn get_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        self.tasks.get_mut((id.0 as usize).checked_sub(1)?)
    }

    /// A task known to exist.
    pub(super) fn get_mut_task(&mut self, id: TaskId) -> &mut Task {
        self.get_mut(id).expect("exists")
    }

    /// Adds a batch of tasks. Dependencies name tasks of the same batch or
    /// give ids of earlier ones; a batch with an unknown name, an unknown
    /// id, a duplicate name or a cycle is refused whole.
    pub fn submit(&mut self, specs: Vec<TaskSpec>) -> Result<Vec<TaskId>, SubmitError> {
        let first = self.tasks.len() as u64 + 1;
        let resolved = self.resolve(first, &specs)?;
        check_acyclic(first, &resolved)?;
        for (i, (s, deps)) in specs.iter().zip(&resolved).enumerate() {
            let names: Vec<&str> = deps
                .iter()
                .filter_map(|d| self.name_of(*d, first, &specs))
                .collect();
            check_placeholders(s, i, &names)?;
        }
        // Every task of the batch exists before any is wired, since a task
        // may name one that comes after it.
        let ids: Vec<TaskId> = (0..specs.len() as u64).map(|i| TaskId(first + i)).collect();
        for (spec, deps) in specs.into_iter().zip(resolved) {
            let class = self.ready.class_of(&spec);
            self.tasks.push(Task {
                class,
                spec,
                deps,
                dependents: Vec::new(),
                waiting_on: 0,
                state: TaskState::Waiting,
                attempts: 0,
                lost: 0,
                stopped: 0,
                grown: 0,
                worker: None,
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
                let t = self.get_mut(id).expect("just pushed");
                t.state = TaskState::Ready;
                let class = t.class;
                self.ready.insert(id, class);
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
            self.check_bounds(s, i)?;
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

    /// The name of task `id`, of the book or of the batch starting at `first`.
    fn name_of<'a>(&'a self, id: TaskId, first: u64, batch: &'a [TaskSpec]) -> Option<&'a str> {
        match id.0.checked_sub(first) {
            Some(k) => batch.get(k as usize)?.name.as_deref(),
            None => self.get(id)?.spec.name.as_deref(),
        }
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
        room: Room,
        allocation_end_s: Option<u64>,
        now_ms: u64,
    ) -> Vec<Assignment> {
        let group = room.group;
        let mut free = Free::new(room, self.busy.get(&worker));
        if free.full() {
            return Vec::new();
        }
        let outlasts = |id: TaskId| {
            let t = self.get(id).expect("ready tasks exist");
            match (t.spec.time_limit_ms, allocation_end_s) {
                (Some(limit), Some(end)) => {
                    now_ms.saturating_add(limit) <= end.saturating_mul(1000)
                }
                _ => true,
            }
        };
        let chosen = self.ready.pick(&mut free, outlasts);
        chosen
            .into_iter()
            .map(|id| self.start(id, worker, group, now_ms))
            .collect()
    }

    /// Hands `id` to `worker` (of `group`) at `now_ms`.
    fn start(
        &mut self,
        id: TaskId,
        worker: WorkerId,
        group: Option<&str>,
        now_ms: u64,
    ) -> Assignment {
        let class = self.get(id).expect("exists").class;
        self.ready.remove(id, class);
        let mut env = BTreeMap::new();
        let mut values: Vec<(String, String)> = Vec::new();
        let deps = self.get(id).expect("exists").deps.clone();
        for d in deps {
            let dep = self.get(d).expect("exists");
            let out = self.outputs.stdout(d).unwrap_or_default();
            if let Some(name) = &dep.spec.name {
                env.insert(format!("DROVER_DEP_{}", env_name(name)), out.clone());
                values.push((name.clone(), out));
            }
        }
        let t = self.get_mut(id).expect("exists");
        t.state = TaskState::Running;
        t.attempts = t.attempts.saturating_add(1);
        t.worker = Some(worker);
        // In one pass each, so a value holding `{{other}}` stays as it is.
        let value = |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let fill = |s: &str| placeholders::substitute(s, value);
        // A shell script gets references to the variables, never the values
        // as text: upstream output is data, and must not become code.
        // (Submission refused placeholders anywhere else they could run.)
        let refer = |s: &str| {
            placeholders::substitute(s, |n| {
                value(n).map(|_| format!("${{DROVER_DEP_{}}}", env_name(n)))
            })
        };
        let roles = placeholders::roles(&t.spec.argv);
        let argv = t
            .spec
            .argv
            .iter()
            .zip(&roles)
            .map(|(a, role)| match role {
                placeholders::Role::ShellScript => refer(a),
                _ => fill(a),
            })
            .collect();
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
            gpus: t.spec.gpus,
            time_limit_ms: t.spec.time_limit_ms,
        };
        let t = &self.tasks[(id.0 - 1) as usize];
        let class = self.ready.class_or(t.class, &t.spec);
        self.busy.entry(worker).or_default().hold(id, &class);
        let ask = (a.cores, a.gpus);
        (self.busy_time).started(id, a.attempt, worker, group, ask, now_ms);
        a
    }

    pub(super) fn release(&mut self, worker: WorkerId, id: TaskId) {
        let Some(t) = self.tasks.get((id.0 as usize).wrapping_sub(1)) else {
            return;
        };
        if let Some(b) = self.busy.get_mut(&worker) {
            b.release(id, &self.ready.class_or(t.class, &t.spec));
            if b.tasks.is_empty() {
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
        if t.worker != Some(worker) || t.attempts != done.attempt {
            return false;
        }
        (self.busy_time).reported(done.task, done.attempt, worker, done.output.millis);
        let t = self.get(done.task).expect("exists");
        if t.state == TaskState::Cancelled {
            // The killed run of a cancelled task: its cores are free now.
            let was_busy = self.running_on_includes(worker, done.task);
            self.release(worker, done.task);
            return was_busy;
        }
        if t.state != TaskState::Running {
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
        let grown = self.grown_ask(done.task, !ok && done.output.oom_killed);
        self.outputs.insert(done.task, done.output);
        let t = self.get_mut(done.task).expect("exists");
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
                        let class = dep.class;
                        self.ready.insert(d, class);
                    }
                }
            }
        } else if let Some(more) = grown {
            self.grow(done.task, more);
        } else if t.attempts <= t.spec.retries.saturating_add(t.free_runs()) {
            t.state = TaskState::Ready;
            t.reason = Some(format!("run {} failed ({why}); retrying", t.attempts));
            let class = t.class;
            self.ready.insert(done.task, class);
        } else {
            self.fail(done.task, why);
        }
        true
    }

    /// Fails `id` and, transitively, everything that depends on it.
    pub(super) fn fail(&mut self, id: TaskId, why: String) {
        let mut stack = vec![(id, why)];
        while let Some((id, why)) = stack.pop() {
            let name = self.describe(id);
            let t = self.get_mut(id).expect("exists");
            if t.state.is_final() {
                continue;
            }
            t.state = TaskState::Failed;
            t.reason = Some(why);
            let class = t.class;
            self.ready.remove(id, class);
            let dependents = self.get(id).expect("exists").dependents.clone();
            for d in dependents {
                if !self.get(d).expect("exists").state.is_final() {
                    stack.push((d, format!("dependency {name} failed")));
                }
            }
        }
    }

    /// Cancels `id` (if not over) and fails what depends on it. A running
    /// task keeps its cores until its worker reports the run killed (or
    /// the worker is gone); returns that worker and the run to kill.
    pub fn cancel(&mut self, id: TaskId) -> Option<(WorkerId, u32)> {
        let t = self.get(id)?;
        if t.state.is_final() {
            return None;
        }
        let run = (t.state == TaskState::Running)
            .then_some(t.worker)
            .flatten()
            .map(|w| (w, t.attempts));
        self.fail(id, "cancelled".into());
        self.get_mut(id).expect("exists").state = TaskState::Cancelled;
        run
    }

    fn running_on_includes(&self, worker: WorkerId, id: TaskId) -> bool {
        self.busy
            .get(&worker)
            .is_some_and(|b| b.tasks.contains(&id))
    }

    /// Whether some task waits for a worker.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// How many tasks `worker` runs.
    pub fn running_on(&self, worker: WorkerId) -> usize {
        self.busy.get(&worker).map(|b| b.tasks.len()).unwrap_or(0)
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
            lost: t.lost,
            stopped: t.stopped,
            grown: t.grown,
            worker: t.worker,
            deps: t.deps.clone(),
            output: self.outputs.get(id),
            reason: t.reason.clone(),
        })
    }

    /// One page of tasks: those in `ids` (in their order), else every
    /// task after `after`; at most `TASK_PAGE` of them and about
    /// `TASK_PAGE_BYTES` of output. Says whether more were left.
    pub fn page(&self, ids: Option<&[TaskId]>, after: Option<TaskId>) -> (Vec<TaskInfo>, bool) {
        let from = after.map_or(1, |a| a.0.saturating_add(1));
        let all = (from..=self.tasks.len() as u64).map(TaskId);
        let wanted: Box<dyn Iterator<Item = TaskId>> = match ids {
            Some(ids) => Box::new(ids.iter().copied()),
            None => Box::new(all),
        };
        let mut page = Vec::new();
        let mut bytes = 0u64;
        for id in wanted {
            if page.len() >= TASK_PAGE || (bytes >= TASK_PAGE_BYTES as u64 && !page.is_empty()) {
                return (page, true);
            }
            if let Some(info) = self.info(id) {
                bytes = bytes.saturating_add(info.output.as_ref().map_or(0, outputs::size));
                page.push(info);
            }
        }
        (page, false)
    }

    /// Every task, or those in `ids` (tests; the API pages).
    pub fn list(&self, ids: Option<&[TaskId]>) -> Vec<TaskInfo> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = match ids {
                Some(ids) => self.page(Some(&ids[all.len()..]), None),
                None => self.page(None, after),
            };
            after = page.last().map(|t| t.id);
            all.extend(page);
            if !more {
                return all;
            }
        }
    }

    /// Sets how much more memory a task killed for memory asks for next
    /// time (hundredths of a factor; `None`: such a task fails).
    pub fn set_memory_growth(&mut self, percent: Option<u32>) {
        self.memory_growth = percent;
    }

    /// Sets the bytes of finished output kept in memory.
    pub fn set_output_budget(&mut self, bytes: u64) {
        self.outputs.set_budget(bytes);
    }

    /// Keeps each group's busy time or not (`accounting = false`).
    pub fn keep_busy_time(&mut self, on: bool) {
        self.busy_time.keep(on);
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

/// Refuses a task whose dependencies' results could run as code where its
/// placeholders stand, or would share one variable.
fn check_placeholders(s: &TaskSpec, i: usize, deps: &[&str]) -> Result<(), SubmitError> {
    for (k, a) in deps.iter().enumerate() {
        if let Some(b) = deps[k + 1..].iter().find(|b| env_name(b) == env_name(a)) {
            return Err(SubmitError::DepNamesCollide {
                task: label(s, i),
                a: a.to_string(),
                b: b.to_string(),
                var: env_name(a),
            });
        }
    }
    let roles = placeholders::roles(&s.argv);
    for (index, (arg, role)) in s.argv.iter().zip(roles).enumerate() {
        let role = match role {
            placeholders::Role::Data | placeholders::Role::ShellScript => continue,
            placeholders::Role::OtherCode => "code another interpreter runs",
            placeholders::Role::Unclear => "handed to a program that may run it as code",
        };
        if let Some(name) = placeholders::names_in(arg)
            .into_iter()
            .find(|n| deps.contains(n))
        {
            return Err(SubmitError::PlaceholderInCode {
                task: label(s, i),
                name: name.to_string(),
                index,
                role,
                var: env_name(name),
            });
        }
    }
    Ok(())
}

pub(super) fn label(s: &TaskSpec, i: usize) -> String {
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
pub(crate) mod tests {
    use super::*;
    use crate::exit::{ExitStatus, USAGE};
    use crate::protocol::TaskOutput;
    use crate::tasks::{MAX_RETRIES, MAX_TIME_LIMIT_MS};

    fn spec(name: &str, argv: &[&str], deps: &[&str]) -> TaskSpec {
        TaskSpec {
            name: Some(name.into()),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cores: 1,
            deps: deps.iter().map(|d| Dep::Name(d.to_string())).collect(),
            ..Default::default()
        }
    }

    /// A run's report, for tests.
    pub(crate) fn done(a: &Assignment, code: i32, stdout: &str) -> Completion {
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
        let a = e.assign(W, Room::cores(4), None, 0);
        assert_eq!(a.len(), 1, "only x is ready");
        assert!(e.complete(W, done(&a[0], 0, "1\n")));
        let b = e.assign(W, Room::cores(4), None, 0);
        assert_eq!(b[0].argv, ["inc", "1"]);
        assert_eq!(b[0].env["DROVER_DEP_X"], "1");
        e.complete(W, done(&b[0], 0, "2"));
        let c = e.assign(W, Room::cores(4), None, 0);
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
        let a = e.assign(W, Room::cores(4), None, 0);
        assert_eq!(a[0].task, ids[1]);
        e.complete(W, done(&a[0], 0, "1"));
        assert_eq!(e.assign(W, Room::cores(4), None, 0)[0].argv, ["add", "1"]);
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
        let a = e.assign(W, Room::cores(4), None, 0);
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
        let a = e.assign(W, Room::cores(2), None, 0);
        let names: Vec<u64> = a.iter().map(|a| a.task.0).collect();
        assert_eq!(
            names,
            [1, 3],
            "the 4-core task waits for a worker with room"
        );
        assert!(
            e.assign(W, Room::cores(2), None, 0).is_empty(),
            "no core left"
        );
        assert_eq!(
            e.assign(WorkerId(2), Room::cores(8), None, 0)[0].task,
            TaskId(2)
        );
    }

    #[test]
    fn lost_workers_requeue_and_stale_reports_are_ignored() {
        let mut e = Engine::default();
        let ids = e.submit(vec![spec("a", &["x"], &[])]).unwrap();
        let first = e.assign(W, Room::cores(1), None, 0);
        assert_eq!(e.worker_gone(W, "lost", 0), 1);
        let second = e.assign(WorkerId(2), Room::cores(1), None, 0);
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
        assert!(e.assign(W, Room::cores(1), Some(30), 0).is_empty());
        assert_eq!(e.assign(W, Room::cores(1), Some(120), 0).len(), 1);
    }

    #[test]
    fn runs_slurm_stopped_use_no_retry_until_they_pass_the_free_count() {
        let mut e = Engine::default();
        let mut t = spec("long", &["x"], &[]);
        t.retries = 0;
        let id = e.submit(vec![t]).unwrap()[0];
        for n in 1..=STOPPED_RUNS_FREE {
            assert_eq!(e.assign(W, Room::cores(1), None, 0).len(), 1);
            assert_eq!(e.worker_stopped(W, 0), 1, "stop {n} requeues it");
            let info = e.info(id).unwrap();
            assert_eq!(
                (info.state, info.stopped, info.lost),
                (TaskState::Ready, n, 0)
            );
        }
        // Past the free stops, a stop is a lost run, with the lost runs' budget.
        for n in 1..=LOST_WORKER_RETRIES {
            e.assign(W, Room::cores(1), None, 0);
            assert_eq!(e.worker_stopped(W, 0), 1);
            assert_eq!(e.info(id).unwrap().lost, n);
        }
        e.assign(W, Room::cores(1), None, 0);
        assert_eq!(e.worker_stopped(W, 0), 0);
        assert_eq!(e.info(id).unwrap().state, TaskState::Failed);

        // A task stopped once still has its one failure to fail by.
        let id = e.submit(vec![spec("once", &["x"], &[])]).unwrap()[0];
        e.assign(W, Room::cores(1), None, 0);
        e.worker_stopped(W, 0);
        let a = e.assign(W, Room::cores(1), None, 0);
        assert_eq!(a[0].attempt, 2);
        e.complete(W, done(&a[0], 3, ""));
        let info = e.info(id).unwrap();
        assert_eq!((info.state, info.attempts), (TaskState::Failed, 2));
    }

    #[test]
    fn retries_and_bad_batches() {
        let mut e = Engine::default();
        let mut t = spec("flaky", &["x"], &[]);
        t.retries = 1;
        let ids = e.submit(vec![t]).unwrap();
        let a = e.assign(W, Room::cores(1), None, 0);
        e.complete(W, done(&a[0], 3, ""));
        assert_eq!(e.info(ids[0]).unwrap().state, TaskState::Ready);
        let b = e.assign(W, Room::cores(1), None, 0);
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

    #[test]
    fn numbers_out_of_range_are_refused_and_sums_cannot_overflow() {
        let mut e = Engine::default();
        let with = |f: &dyn Fn(&mut TaskSpec)| {
            let mut t = spec("t", &["x"], &[]);
            f(&mut t);
            vec![t]
        };
        for (batch, field) in [
            (with(&|t| t.time_limit_ms = Some(u64::MAX)), "time_limit_ms"),
            (with(&|t| t.time_limit_ms = Some(0)), "time_limit_ms"),
            (with(&|t| t.retries = u32::MAX), "retries"),
            (with(&|t| t.cores = 1_000_000), "cores"),
        ] {
            let err = e.submit(batch).unwrap_err();
            assert!(
                matches!(err, SubmitError::OutOfRange { field: f, .. } if f == field),
                "{err}"
            );
            assert!(err.to_string().contains("accepted:"), "{err}");
        }
        // The largest accepted values run and fail without a panic.
        let mut t = spec("big", &["x"], &[]);
        (t.time_limit_ms, t.retries) = (Some(MAX_TIME_LIMIT_MS), MAX_RETRIES);
        let id = e.submit(vec![t]).unwrap()[0];
        let a = e.assign(W, Room::cores(1), Some(u64::MAX), u64::MAX);
        assert_eq!(a.len(), 1);
        assert_eq!(e.worker_gone(W, "lost", 0), 1);
        assert_eq!(e.info(id).unwrap().state, TaskState::Ready);
    }

    #[test]
    fn a_task_no_worker_can_hold_fails_with_why_once_the_pool_says() {
        let mut e = Engine::default();
        let mut wide = spec("wide", &["x"], &[]);
        wide.cores = 64;
        let after = spec("after", &["x"], &["wide"]);
        let ids = e.submit(vec![wide.clone(), after]).unwrap();
        assert_eq!(e.set_max_cores(8), 1);
        let info = e.info(ids[0]).unwrap();
        assert_eq!(info.state, TaskState::Failed);
        assert!(info.reason.unwrap().contains("asks for 64 cores"));
        assert_eq!(e.info(ids[1]).unwrap().state, TaskState::Failed);
        let refused = e.submit(vec![wide]).unwrap_err();
        assert!(
            refused.to_string().contains("no worker could ever run it"),
            "{refused}"
        );
    }

    #[test]
    fn a_cancelled_running_task_holds_its_cores_until_its_run_is_reported_dead() {
        let mut e = Engine::default();
        let ids = e
            .submit(vec![spec("a", &["x"], &[]), spec("b", &["x"], &[])])
            .unwrap();
        let a = e.assign(W, Room::cores(1), None, 0);
        assert_eq!(e.cancel(ids[0]), Some((W, a[0].attempt)));
        assert_eq!(e.info(ids[0]).unwrap().state, TaskState::Cancelled);
        assert!(
            e.assign(W, Room::cores(1), None, 0).is_empty(),
            "its core is still taken"
        );
        let mut killed = done(&a[0], 0, "");
        killed.output.exit_code = None;
        assert!(e.complete(W, killed.clone()));
        assert!(!e.complete(W, killed), "a second report changes nothing");
        assert_eq!(e.info(ids[0]).unwrap().state, TaskState::Cancelled);
        assert_eq!(e.assign(W, Room::cores(1), None, 0)[0].task, ids[1]);
    }

    #[test]
    fn upstream_output_reaches_a_shell_as_a_variable_never_as_code() {
        let mut e = Engine::default();
        let up = spec("up", &["x"], &[]);
        let sh = spec("sh", &["/bin/sh", "-c", "echo {{up}}", "{{up}}"], &["up"]);
        let plain = spec("plain", &["echo", "{{up}}"], &["up"]);
        e.submit(vec![up, sh, plain]).unwrap();
        let a = e.assign(W, Room::cores(1), None, 0);
        e.complete(W, done(&a[0], 0, "$(touch pwned); rm -rf ~\n"));
        let next = e.assign(W, Room::cores(2), None, 0);
        let value = "$(touch pwned); rm -rf ~";
        assert_eq!(
            next[0].argv,
            ["/bin/sh", "-c", "echo ${DROVER_DEP_UP}", value]
        );
        assert_eq!(next[0].env["DROVER_DEP_UP"], value);
        assert_eq!(next[1].argv, ["echo", value]);
    }

    /// Issue 29 B: every way of running a shell script gets references,
    /// code of other interpreters and opaque programs are refused, and two
    /// dependency names that share a variable are refused.
    #[test]
    fn placeholders_are_safe_in_every_form_or_refused() {
        for argv in [
            &["bash", "-lc", "echo {{up}}"][..],
            &["sh", "-e", "-c", "echo {{up}}"],
            &["env", "sh", "-c", "echo {{up}}"],
            &[
                "/usr/bin/env",
                "-i",
                "A=1",
                "nice",
                "-n",
                "3",
                "dash",
                "-c",
                "echo {{up}}",
            ],
        ] {
            let mut e = Engine::default();
            e.submit(vec![spec("up", &["x"], &[]), spec("t", argv, &["up"])])
                .unwrap();
            let a = e.assign(W, Room::cores(1), None, 0);
            e.complete(W, done(&a[0], 0, "x; echo INJECTED-$((6*7))\n"));
            let next = e.assign(W, Room::cores(1), None, 0);
            assert_eq!(
                next[0].argv.last().unwrap(),
                "echo ${DROVER_DEP_UP}",
                "{argv:?}"
            );
        }
        for argv in [
            &["python3", "-c", "print('{{up}}')"][..],
            &["ssh", "node1", "echo {{up}}"],
            &["srun", "bash", "-c", "echo {{up}}"],
            &["env", "-S", "sh -c 'echo {{up}}'"],
        ] {
            let mut e = Engine::default();
            let err = e
                .submit(vec![spec("up", &["x"], &[]), spec("t", argv, &["up"])])
                .unwrap_err();
            assert!(
                matches!(err, SubmitError::PlaceholderInCode { .. }),
                "{argv:?}: {err}"
            );
            assert!(err.to_string().contains("$DROVER_DEP_UP"), "{err}");
        }
        let mut e = Engine::default();
        let err = e
            .submit(vec![
                spec("a.b", &["x"], &[]),
                spec("a-b", &["x"], &[]),
                spec("t", &["echo", "{{a.b}} {{a-b}}"], &["a.b", "a-b"]),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("DROVER_DEP_A_B"), "{err}");
    }

    #[test]
    fn tasks_that_ask_for_memory_run_only_where_that_much_is_free() {
        let mut e = Engine::default();
        let big = |n: &str| TaskSpec {
            memory_bytes: Some(600),
            ..spec(n, &["x"], &[])
        };
        let ids = e
            .submit(vec![big("a"), big("b"), spec("small", &["x"], &[])])
            .unwrap();
        let room = Room {
            memory: 1000,
            ..Room::cores(4)
        };
        let first = e.assign(W, room, None, 0);
        let got: Vec<TaskId> = first.iter().map(|a| a.task).collect();
        assert_eq!(
            got,
            [ids[0], ids[2]],
            "one big task fits beside the small one"
        );
        assert!(e.assign(W, room, None, 0).is_empty(), "b waits for memory");
        assert!(e.complete(W, done(&first[0], 0, "")));
        assert_eq!(e.assign(W, room, None, 0)[0].task, ids[1]);
        // Lost with its worker, the memory it held is free again.
        e.worker_gone(W, "lost", 0);
        let again = e.assign(W, room, None, 0);
        assert_eq!(again.len(), 2, "b and small run again: {again:?}");
    }

    #[test]
    fn a_task_asking_more_memory_than_any_worker_has_is_refused_with_why() {
        let mut e = Engine::default();
        let asks = |n: &str, bytes: u64| TaskSpec {
            memory_bytes: Some(bytes),
            ..spec(n, &["x"], &[])
        };
        e.submit(vec![asks("queued", 3 << 30)]).unwrap();
        assert_eq!(e.set_max_memory(1 << 30), 1);
        let reason = e.info(TaskId(1)).unwrap().reason.unwrap();
        assert!(
            reason.contains("3GiB of memory, but the pool's workers have 1GiB"),
            "{reason}"
        );
        let refused = e.submit(vec![asks("later", 2 << 30)]).unwrap_err();
        assert!(
            matches!(refused, SubmitError::TooMuchMemory { .. }),
            "{refused}"
        );
        assert_eq!(refused.exit_code(), USAGE);
        let zero = e.submit(vec![asks("none", 0)]).unwrap_err();
        assert!(zero.to_string().contains("memory_bytes = 0"), "{zero}");
        assert!(e.submit(vec![asks("fits", 1 << 30)]).is_ok());
    }
}
