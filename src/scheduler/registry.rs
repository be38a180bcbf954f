//! The registry of workers: who registered, when each was last heard from,
//! and what each should be told at its next poll.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::WorkerKind;
use crate::journal::{Journal, Op, PoolMode, Waiter};
use crate::protocol::{
    unix_ms, Completion, Departure, Instruction, RegisterRequest, TaskId, TaskRun, TaskSpec,
    WorkerId, WorkerInfo, WorkerState,
};
use crate::tasks::{Engine, Room, SubmitError};

/// One worker's record.
pub(super) struct Entry {
    pub(super) info: WorkerInfo,
    /// The agent's process id on its node: with the host, tells a retried
    /// registration from a new agent under the same name.
    pub(super) pid: u32,
    pub(super) last_seen: Instant,
    /// Woken when an instruction is queued, so a held poll answers at once.
    pub(super) wake: Arc<Notify>,
    pub(super) instruction: Option<Instruction>,
    /// Runs of cancelled tasks it must kill, told once.
    pub(super) cancels: Vec<TaskRun>,
    /// Restored from the journal with runs handed out: its first poll
    /// says which it holds, and the others are requeued.
    pub(super) unconfirmed: bool,
    /// Registered or restored from the journal, and not heard from since
    /// (no heartbeat yet): it has a grace beyond the usual bound, scaled
    /// to how many wait alike (`mark_lost`).
    pub(super) awaited: bool,
}

/// Tasks handed to a worker, and when.
#[derive(Default)]
struct Assigned {
    runs: Vec<crate::tasks::Assignment>,
    at_ms: u64,
}

/// What a poll finds.
pub(crate) enum PollStart {
    /// An instruction is ready.
    Now(Instruction),
    /// Nothing yet: wait on this until the poll's time is up.
    Wait(Arc<Notify>),
}

/// Every worker of one scheduler.
#[derive(Default)]
pub(crate) struct Registry {
    pub(super) next_id: u64,
    /// How many workers have become awaited (registered or restored, not
    /// yet heard from) since none was: the size of the current arrival,
    /// which sets each awaited worker's grace (`mark_lost`).
    pub(super) arriving: u32,
    /// In id order, so the listing pages without sorting.
    pub(super) workers: BTreeMap<WorkerId, Entry>,
    /// The last worker registered under each name: a registration finds
    /// the worker it may supersede without a walk over every worker.
    pub(super) names: HashMap<String, WorkerId>,
    /// The tasks the workers run.
    pub(crate) tasks: Engine,
    /// Where every change is recorded, when the scheduler keeps a journal.
    pub(super) journal: Option<Journal>,
    /// How the pool this scheduler serves is sized, as last recorded.
    pub(super) pool: Option<PoolMode>,
    /// How each group of a pool with groups is sized, as last recorded.
    pub(super) group_pools: std::collections::BTreeMap<String, PoolMode>,
    /// Groups whose jobs wait long in Slurm's queue (not journaled: each
    /// pool says so again every round).
    pub(super) stalled: std::collections::BTreeSet<Option<String>>,
    /// A snapshot being replayed: its tasks, as their records come.
    pub(super) restoring: Option<(u64, crate::tasks::EngineImage)>,
}

impl Registry {
    /// An empty book with `config`'s bounds on task outputs and memory.
    pub(super) fn for_config(config: &super::SchedulerConfig) -> Registry {
        let mut registry = Registry::default();
        registry.tasks.set_output_budget(config.max_output_memory);
        registry
            .tasks
            .set_memory_growth(config.task_memory_growth.percent());
        registry.tasks.keep_busy_time(config.accounting);
        registry
    }

    /// Registers a worker. One under the name of a live worker supersedes
    /// it (see `supersede`), so each job counts once.
    ///
    /// The same agent asking again (same name, host and process: its first
    /// answer was lost on the way, and it retried) gets its registration
    /// back instead: one process is one worker, however often it asks.
    pub(crate) fn register(&mut self, req: RegisterRequest) -> WorkerId {
        self.register_at(req, unix_ms())
    }

    fn register_at(&mut self, req: RegisterRequest, now: u64) -> WorkerId {
        let holder = match self
            .names
            .get(&req.name)
            .and_then(|id| self.workers.get_mut(id))
            .filter(|e| e.info.state.is_live())
        {
            Some(e) if e.pid == req.pid && e.info.hostname == req.hostname => {
                e.last_seen = Instant::now();
                return e.info.id;
            }
            Some(e) => Some(e.info.id),
            None => None,
        };
        self.next_id += 1;
        let id = WorkerId(self.next_id);
        if let Some(j) = &mut self.journal {
            j.append(&Op::Register {
                id,
                request: req.clone(),
                at_ms: now,
            });
        }
        let info = WorkerInfo {
            id,
            name: req.name,
            slurm: req.slurm,
            hostname: req.hostname,
            address: req.address,
            cores: req.cores,
            memory_bytes: req.memory_bytes,
            allocation_end: req.allocation_end,
            drain_at_ms: req.drain_at_ms,
            state: WorkerState::Running,
            registered_at_ms: now,
            last_heartbeat_ms: now,
            exit_reason: None,
            exited_at_ms: None,
            running_tasks: 0,
            idle_since_ms: Some(now),
            kind: req.kind,
            dask_name: req.dask_name,
            offer: req.offer,
        };
        self.names.insert(info.name.clone(), id);
        self.arriving = self.arriving.saturating_add(1);
        self.workers.insert(
            id,
            Entry {
                info,
                pid: req.pid,
                last_seen: Instant::now(),
                wake: Arc::new(Notify::new()),
                instruction: None,
                cancels: Vec::new(),
                unconfirmed: false,
                awaited: true,
            },
        );
        if let Some(old) = holder {
            self.supersede(old, id);
        }
        id
    }

    /// Takes `old` as gone because `new` registered under its name: Slurm
    /// ran the job's script again. A controller restarted without the
    /// state of jobs that had just started recovers them as pending, and
    /// the node kills the first scripts as orphans (SIGKILL, so they never
    /// say goodbye) before it starts them again (seen on the local Slurm,
    /// 22.05: the kill came a second before the new start). So the new
    /// agent is the one Slurm runs; the old one's tasks go back to the
    /// queue at once, and should it still be there, its next poll tells it
    /// to drop them and leave.
    fn supersede(&mut self, old: WorkerId, new: WorkerId) {
        if let Some(e) = self.workers.get_mut(&old) {
            tracing::warn!(worker = %old, %new, name = %e.info.name, "a new agent of the same job registered: the old one is gone");
            e.info.state = WorkerState::Lost;
            e.info.exited_at_ms = Some(unix_ms());
            e.info.exit_reason = Some(format!(
                "superseded by {new}, a new agent of the same job (Slurm ran its script again)"
            ));
            e.instruction = None;
            e.wake.notify_one();
        }
        if self
            .tasks
            .worker_gone(old, "superseded by a new agent of its job", unix_ms())
            > 0
        {
            self.wake_idle();
        }
    }

    /// Records a heartbeat and says whether to answer now or wait. `None`
    /// for an unknown worker. A worker that says it drains is given no more
    /// tasks.
    pub(crate) fn poll(
        &mut self,
        id: WorkerId,
        draining: bool,
        holding: Option<Vec<TaskRun>>,
    ) -> Option<PollStart> {
        let entry = self.workers.get_mut(&id)?;
        if std::mem::take(&mut entry.unconfirmed) {
            if let Some(held) = holding {
                self.confirm(id, held);
            }
        }
        let entry = self.workers.get_mut(&id)?;
        entry.last_seen = Instant::now();
        entry.awaited = false;
        entry.info.last_heartbeat_ms = unix_ms();
        let drains = draining && entry.info.state == WorkerState::Running;
        if drains {
            entry.info.state = WorkerState::Draining;
        }
        let wake = entry.wake.clone();
        if let (true, Some(j)) = (drains, &mut self.journal) {
            j.append(&Op::Draining { worker: id });
        }
        Some(match self.next_for(id) {
            Some(i) => PollStart::Now(i),
            None => PollStart::Wait(wake),
        })
    }

    /// What wakes worker `id`'s session (or held poll) when there is news
    /// for it; `None` for a worker the registry does not know.
    pub(crate) fn wake_of(&self, id: WorkerId) -> Option<Arc<Notify>> {
        self.workers.get(&id).map(|e| e.wake.clone())
    }

    /// What `id` should be told now, if anything: a retirement, or tasks
    /// that fit its free cores.
    pub(crate) fn next_for(&mut self, id: WorkerId) -> Option<Instruction> {
        let entry = self.workers.get(&id)?;
        match entry.info.state {
            WorkerState::Exited => {
                return Some(Instruction::Retire {
                    reason: "this worker already deregistered".into(),
                    abandon: true,
                })
            }
            WorkerState::Lost => {
                return Some(Instruction::Retire {
                    reason: "this worker was declared lost and its tasks given to others".into(),
                    abandon: true,
                })
            }
            _ => {}
        }
        // Restarted from the journal, a worker is told nothing until its
        // first heartbeat has said what it holds: tasks pushed before that
        // would be missing from it, and so be handed out twice.
        if entry.unconfirmed {
            return None;
        }
        if !entry.cancels.is_empty() {
            let runs = std::mem::take(&mut self.workers.get_mut(&id)?.cancels);
            return Some(Instruction::Cancel { runs });
        }
        if let Some(i) = &entry.instruction {
            return Some(i.clone());
        }
        if entry.info.state != WorkerState::Running
            || entry.info.kind != WorkerKind::Native
            || !self.tasks.has_ready()
        {
            return None;
        }
        let tasks = self.assign(id, unix_ms());
        if tasks.runs.is_empty() {
            return None;
        }
        if let Some(j) = &mut self.journal {
            j.append(&Op::Assign {
                worker: id,
                at_ms: tasks.at_ms,
            });
        }
        Some(Instruction::Run { tasks: tasks.runs })
    }

    /// Hands worker `id` the ready tasks that fit it, as of `now`.
    fn assign(&mut self, id: WorkerId, now: u64) -> Assigned {
        let Some(entry) = self.workers.get(&id) else {
            return Assigned::default();
        };
        let room = Room {
            cores: entry.info.cores,
            memory: entry.info.memory_bytes,
            gpus: entry.info.offer.gpu_count(),
            resources: &entry.info.offer.resources,
            group: entry.info.offer.group.as_deref(),
        };
        let end = entry.info.allocation_end;
        let runs = self.tasks.assign(id, room, end, now);
        if !runs.is_empty() {
            if let Some(e) = self.workers.get_mut(&id) {
                e.info.idle_since_ms = None;
            }
        }
        Assigned { runs, at_ms: now }
    }

    /// Wakes the held polls of workers that may take a ready task.
    pub(crate) fn wake_idle(&self) {
        if !self.tasks.has_ready() {
            return;
        }
        for e in self.workers.values() {
            if e.info.state == WorkerState::Running && e.instruction.is_none() {
                e.wake.notify_one();
            }
        }
    }

    /// A worker's report that a task ended; wakes whoever can run what it
    /// made ready, the reporting worker first.
    pub(crate) fn complete(&mut self, id: WorkerId, done: Completion) -> bool {
        if let Some(j) = &mut self.journal {
            j.append(&Op::Complete {
                worker: id,
                done: done.clone(),
            });
        }
        let changed = self.tasks.complete(id, done);
        if self.tasks.running_on(id) == 0 {
            if let Some(e) = self.workers.get_mut(&id) {
                e.info.idle_since_ms.get_or_insert_with(unix_ms);
            }
        }
        if changed {
            if let Some(e) = self.workers.get(&id) {
                e.wake.notify_one();
            }
            self.wake_idle();
        }
        changed
    }

    /// Cancels a task; a running one is killed on its worker, which is
    /// told at once.
    pub(crate) fn cancel_task(&mut self, task: TaskId) {
        if let Some(j) = &mut self.journal {
            j.append(&Op::Cancel { task });
        }
        if let Some((worker, attempt)) = self.tasks.cancel(task) {
            if let Some(e) = self.workers.get_mut(&worker) {
                e.cancels.push(TaskRun { task, attempt });
                e.wake.notify_one();
            }
        }
    }

    /// Queues a retirement for `id`; `false` if it is unknown or gone.
    pub(crate) fn retire(&mut self, id: WorkerId, reason: &str) -> bool {
        let Some(entry) = self.workers.get_mut(&id) else {
            return false;
        };
        if matches!(entry.info.state, WorkerState::Exited | WorkerState::Lost) {
            return false;
        }
        if let Some(j) = &mut self.journal {
            j.append(&Op::Retire {
                worker: id,
                reason: reason.to_string(),
            });
        }
        let Some(entry) = self.workers.get_mut(&id) else {
            return false;
        };
        entry.info.state = WorkerState::Retiring;
        entry.instruction = Some(Instruction::Retire {
            reason: reason.to_string(),
            abandon: false,
        });
        entry.wake.notify_one();
        true
    }

    /// Queues a retirement for every live worker; returns how many.
    pub(crate) fn retire_all(&mut self, reason: &str) -> usize {
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        ids.into_iter()
            .filter(|id| self.retire(*id, reason))
            .count()
    }

    /// Marks `id` as gone by its own word.
    pub(crate) fn deregister(&mut self, id: WorkerId, reason: String, how: Departure) -> bool {
        self.deregister_at(id, reason, how, unix_ms())
    }

    fn deregister_at(&mut self, id: WorkerId, reason: String, how: Departure, now: u64) -> bool {
        if !self.workers.contains_key(&id) {
            return false;
        }
        if let Some(j) = &mut self.journal {
            j.append(&Op::Deregister {
                worker: id,
                reason: reason.clone(),
                at_ms: now,
                departure: how,
            });
        }
        let Some(entry) = self.workers.get_mut(&id) else {
            return false;
        };
        entry.info.state = WorkerState::Exited;
        entry.info.exit_reason = Some(reason);
        entry.info.exited_at_ms = Some(now);
        entry.instruction = None;
        let requeued = match how {
            Departure::Orderly => self.tasks.worker_gone(id, "gone", now),
            Departure::Stopped => self.tasks.worker_stopped(id, now),
        };
        if requeued > 0 {
            self.wake_idle();
        }
        true
    }

    /// Records what the Dask scheduler says the Dask workers named in
    /// `busy` (by their Dask names) are doing: how many tasks each has
    /// executing or ready. An idle one is idle from the first such report.
    pub(crate) fn set_dask_activity(&mut self, busy: &HashMap<String, u32>) {
        let now = unix_ms();
        for e in self.workers.values_mut() {
            let Some(name) = e.info.dask_name.as_deref() else {
                continue;
            };
            if let Some(&n) = busy.get(name) {
                e.info.running_tasks = n;
                if n == 0 {
                    e.info.idle_since_ms.get_or_insert(now);
                } else {
                    e.info.idle_since_ms = None;
                }
            }
        }
    }

    /// Records an action taken from the status page.
    pub(crate) fn record_action(&mut self, action: &crate::protocol::PageAction, at_ms: u64) {
        if let Some(j) = &mut self.journal {
            j.append(&Op::PageAction {
                action: action.clone(),
                at_ms,
            });
        }
    }

    /// Adds a batch of tasks (see `Engine::submit`).
    pub(crate) fn submit(&mut self, specs: Vec<TaskSpec>) -> Result<Vec<TaskId>, SubmitError> {
        let recorded = self.journal.as_ref().map(|_| specs.clone());
        let ids = self.tasks.submit(specs)?;
        if let (Some(j), Some(specs)) = (&mut self.journal, recorded) {
            j.append(&Op::Submit { specs });
        }
        self.wake_idle();
        Ok(ids)
    }

    /// Records the cores of the pool's largest worker; returns how many
    /// queued tasks could never run and failed.
    pub(crate) fn set_max_cores(&mut self, cores: u32) -> usize {
        if let Some(j) = &mut self.journal {
            j.append(&Op::MaxCores { cores });
        }
        self.tasks.set_max_cores(cores)
    }

    /// The pool's worker shapes, one per group.
    pub(crate) fn worker_shapes(&self) -> &[crate::protocol::WorkerShape] {
        self.tasks.shapes()
    }

    /// Records the memory of the pool's largest worker; returns how many
    /// queued tasks could never run and failed.
    pub(crate) fn set_max_memory(&mut self, bytes: u64) -> usize {
        if let Some(j) = &mut self.journal {
            j.append(&Op::MaxMemory { bytes });
        }
        self.tasks.set_max_memory(bytes)
    }

    /// What ready and running tasks ask of `group`.
    pub(crate) fn demand(&self, group: Option<&str>) -> crate::tasks::Ask {
        let shapes = self.tasks.shapes();
        let index = shapes
            .iter()
            .position(|s| s.group.as_deref() == group)
            .unwrap_or(0);
        let asks = self.tasks.demand(
            |w| {
                self.workers
                    .get(&w)
                    .and_then(|e| e.info.offer.group.clone())
            },
            |i| {
                shapes
                    .get(i)
                    .is_some_and(|s| self.stalled.contains(&s.group))
            },
        );
        asks.get(index).cloned().unwrap_or_default()
    }

    /// Marks `group`'s jobs as stalled in Slurm's queue, or not.
    pub(crate) fn set_stalled(&mut self, group: Option<&str>, stalled: bool) {
        let key = group.map(String::from);
        match stalled {
            true => self.stalled.insert(key),
            false => self.stalled.remove(&key),
        };
    }

    /// Records the shapes of the pool's workers; returns how many queued
    /// tasks could never run and failed.
    pub(crate) fn set_shapes(&mut self, shapes: Vec<crate::protocol::WorkerShape>) -> usize {
        if let Some(j) = &mut self.journal {
            j.append(&Op::Shapes {
                shapes: shapes.clone(),
            });
        }
        self.tasks.set_shapes(shapes)
    }

    /// Requeues the runs worker `id` was handed but does not hold.
    fn confirm(&mut self, id: WorkerId, held: Vec<TaskRun>) {
        let requeued = self.tasks.runs_not_held(id, &held);
        if let Some(j) = &mut self.journal {
            j.append(&Op::Confirm { worker: id, held });
        }
        if requeued > 0 {
            tracing::info!(worker = %id, requeued, "tasks handed out before the restart never reached the worker: requeued");
            self.wake_idle();
        }
    }

    /// Gives the journal up (the scheduler stopped): nothing more is
    /// recorded, and once dropped its file and lock are released.
    pub(crate) fn release_journal(&mut self) -> Option<Journal> {
        self.journal.take()
    }

    /// Keeps a journal from now on: every change is appended to it.
    pub(crate) fn keep_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// The journal's waiter and its last record, when there is a journal:
    /// an answer goes out once that record is durable.
    pub(crate) fn journal_mark(&self) -> Option<(Waiter, u64)> {
        self.journal.as_ref().map(|j| (j.waiter(), j.last()))
    }

    /// Replays one recorded change, as it was made (its times included).
    /// Runs before a journal is kept, so nothing is recorded again. Only
    /// a snapshot that does not hold together is an error.
    pub(crate) fn replay(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::Snapshot(snapshot) => return self.restore_snapshot(*snapshot),
            Op::SnapshotTasks { tasks } => return self.restore_snapshot_tasks(tasks),
            Op::Identity(_) => {}
            Op::Register { id, request, at_ms } => {
                self.next_id = id.0.saturating_sub(1).max(self.next_id);
                let given = self.register_at(request, at_ms);
                debug_assert_eq!(given, id);
            }
            Op::Assign { worker, at_ms } => {
                self.assign(worker, at_ms);
            }
            Op::Complete { worker, done } => {
                self.complete(worker, done);
            }
            Op::Submit { specs } => {
                if let Err(e) = self.tasks.submit(specs) {
                    tracing::warn!(error = %e, "a recorded submission no longer applies");
                }
            }
            Op::Cancel { task } => self.cancel_task(task),
            Op::Draining { worker } => {
                if let Some(e) = self.workers.get_mut(&worker) {
                    if e.info.state == WorkerState::Running {
                        e.info.state = WorkerState::Draining;
                    }
                }
            }
            Op::Retire { worker, reason } => {
                self.retire(worker, &reason);
            }
            Op::Deregister {
                worker,
                reason,
                at_ms,
                departure,
            } => {
                self.deregister_at(worker, reason, departure, at_ms);
            }
            Op::Lost {
                worker,
                reason,
                at_ms,
            } => {
                if let Some(e) = self.workers.get_mut(&worker) {
                    e.info.state = WorkerState::Lost;
                    e.info.exit_reason = Some(reason);
                    e.info.exited_at_ms = Some(at_ms);
                    e.instruction = None;
                }
                self.tasks.worker_gone(worker, "lost", at_ms);
            }
            Op::MaxCores { cores } => {
                self.tasks.set_max_cores(cores);
            }
            Op::Shapes { shapes } => {
                self.tasks.set_shapes(shapes);
            }
            Op::MaxMemory { bytes } => {
                self.tasks.set_max_memory(bytes);
            }
            Op::Confirm { worker, held } => {
                self.tasks.runs_not_held(worker, &held);
            }
            Op::Pool(mode) => self.pool = Some(mode),
            Op::GroupPool { group, mode } => {
                self.group_pools.insert(group, mode);
            }
            Op::CooldownIdle { group, core_ms } => {
                self.tasks.set_cooldown_idle(group.as_deref(), core_ms);
            }
            Op::Closed { .. } | Op::PageAction { .. } => {}
        }
        Ok(())
    }

    /// Records the idle time `group`'s adaptive pool kept for its
    /// cooldown so far (in the journal when it changed).
    pub(crate) fn set_cooldown_idle(&mut self, group: Option<String>, core_ms: u64) {
        if self.tasks.set_cooldown_idle(group.as_deref(), core_ms) {
            if let Some(j) = &mut self.journal {
                j.append(&Op::CooldownIdle { group, core_ms });
            }
        }
    }

    /// Records that the pool closed: its journal cannot be continued.
    pub(crate) fn closed(&mut self) -> Option<(Waiter, u64)> {
        let j = self.journal.as_mut()?;
        let seq = j.append(&Op::Closed { at_ms: unix_ms() });
        Some((j.waiter(), seq))
    }

    /// Records how the pool is sized, for a restart to hold.
    /// (`group`: of a pool with groups).
    pub(crate) fn set_pool_mode(&mut self, group: Option<&str>, mode: PoolMode) {
        if self.pool_mode(group) == Some(mode) {
            return;
        }
        let op = match group {
            None => Op::Pool(mode),
            Some(g) => Op::GroupPool {
                group: g.to_string(),
                mode,
            },
        };
        if let Some(j) = &mut self.journal {
            j.append(&op);
        }
        match group {
            None => self.pool = Some(mode),
            Some(g) => {
                self.group_pools.insert(g.to_string(), mode);
            }
        }
    }

    /// How the pool (or its `group`) was last sized (restored from the
    /// journal, or set).
    pub(crate) fn pool_mode(&self, group: Option<&str>) -> Option<PoolMode> {
        match group {
            None => self.pool,
            Some(g) => self.group_pools.get(g).copied(),
        }
    }

    /// How many workers are registered and not gone, each name counted
    /// once (a job's second agent is on its way out).
    pub(crate) fn live(&self) -> usize {
        self.workers
            .values()
            .filter(|e| e.info.state.is_live())
            .map(|e| e.info.name.as_str())
            .collect::<HashSet<_>>()
            .len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::{SlurmPlacement, TaskSpec};

    /// A worker's registration, for tests.
    /// The registry a scheduler restarted on `r`'s journal at `path` holds,
    /// once all `r` recorded is durable.
    pub(crate) async fn restarted(r: &Registry, path: &std::path::Path) -> Registry {
        let (waiter, last) = r.journal_mark().unwrap();
        waiter.durable(last).await.unwrap();
        let mut back = Registry::default();
        for op in Journal::read(path).unwrap() {
            back.replay(op).unwrap();
        }
        back.expect_returns();
        back
    }

    pub(crate) fn request(i: u64) -> RegisterRequest {
        RegisterRequest {
            name: format!("{i}"),
            slurm: SlurmPlacement {
                job_id: Some(i),
                ..Default::default()
            },
            hostname: "node1".into(),
            address: "10.0.0.1".into(),
            cores: 4,
            memory_bytes: 1 << 30,
            allocation_end: None,
            drain_at_ms: None,
            pid: 1,
            kind: WorkerKind::Native,
            dask_name: None,
            offer: Default::default(),
        }
    }

    #[test]
    fn a_new_agent_of_a_job_supersedes_the_old_one_and_takes_its_place() {
        let mut r = Registry::default();
        let first = r.register(request(7));
        r.tasks
            .submit(vec![TaskSpec {
                argv: vec!["true".into()],
                ..Default::default()
            }])
            .unwrap();
        assert!(matches!(r.next_for(first), Some(Instruction::Run { .. })));
        // The same agent asking again (its answer was lost) is the same worker.
        assert_eq!(r.register(request(7)), first);
        assert_eq!((r.live(), r.list().len()), (1, 1));
        // Slurm ran the job's script again: a second agent, same name, a
        // process of its own.
        let second = r.register(RegisterRequest {
            pid: 2,
            ..request(7)
        });
        assert_eq!(r.live(), 1, "one job, one worker");
        let states: HashMap<WorkerId, WorkerState> =
            r.list().into_iter().map(|w| (w.id, w.state)).collect();
        assert_eq!(states[&first], WorkerState::Lost);
        assert_eq!(states[&second], WorkerState::Running);
        // The old one's task went back to the queue, and the new one gets it.
        assert!(matches!(r.next_for(second), Some(Instruction::Run { .. })));
        // Should the old one still poll, it drops its tasks and leaves.
        assert!(matches!(
            r.next_for(first),
            Some(Instruction::Retire { abandon: true, .. })
        ));
    }

    fn task(argv: &str) -> TaskSpec {
        TaskSpec {
            argv: vec![argv.into()],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_registry_replayed_from_its_journal_is_the_same_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut r = Registry::default();
        let (journal, _) = Journal::open(&path).unwrap();
        r.keep_journal(journal);
        let a = r.register(request(1));
        let b = r.register(request(2));
        r.submit((0..6).map(|_| task("true")).collect()).unwrap();
        let Some(Instruction::Run { tasks }) = r.next_for(a) else {
            panic!("tasks for a");
        };
        assert_eq!(tasks.len(), 4, "a has 4 cores");
        assert!(matches!(r.next_for(b), Some(Instruction::Run { .. })));
        let done = |t: &crate::tasks::Assignment| Completion {
            task: t.task,
            attempt: t.attempt,
            output: Default::default(),
        };
        assert!(r.complete(a, done(&tasks[0])));
        r.cancel_task(tasks[1].task);
        r.deregister(b, "bye".into(), Departure::Orderly);
        r.retire(a, "closing");
        r.set_pool_mode(None, PoolMode::Fixed { jobs: 8 });
        let adapt = PoolMode::Adapt {
            min_jobs: 1,
            max_jobs: 4,
            idle_ms: 30_000,
        };
        r.set_pool_mode(None, adapt);
        r.set_pool_mode(Some("big"), PoolMode::Fixed { jobs: 2 });
        let shapes = vec![crate::protocol::WorkerShape {
            group: Some("big".into()),
            cores: 8,
            memory_bytes: 1 << 34,
            gpus: Some(2),
            resources: [("licence".to_string(), 1)].into(),
        }];
        r.set_shapes(shapes.clone());
        let (waiter, last) = r.journal_mark().unwrap();
        waiter.durable(last).await.unwrap();

        let ops = Journal::read(&path).unwrap();
        let mut back = Registry::default();
        for op in ops {
            back.replay(op).unwrap();
        }
        let strip = |r: &Registry| {
            r.list()
                .into_iter()
                .map(|w| {
                    (
                        w.id,
                        w.state,
                        w.exit_reason,
                        w.exited_at_ms,
                        w.running_tasks,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&back), strip(&r));
        assert_eq!(back.tasks.counts(), r.tasks.counts());
        assert_eq!(back.tasks.list(None), r.tasks.list(None));
        assert_eq!(back.pool_mode(None), Some(adapt), "the pool's last size");
        let big = back.pool_mode(Some("big"));
        assert_eq!(big, Some(PoolMode::Fixed { jobs: 2 }), "each group's own");
        assert_eq!(back.tasks.shapes(), shapes);
        // New workers get new ids after a replay, as they would have.
        assert_eq!(back.register(request(3)), WorkerId(3));
    }

    #[tokio::test]
    async fn after_a_restart_runs_a_worker_never_received_are_requeued_at_its_first_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut r = Registry::default();
        r.keep_journal(Journal::open(&path).unwrap().0);
        let w = r.register(request(1));
        r.submit(vec![task("a"), task("b")]).unwrap();
        // The scheduler handed out both, then died before the answer left.
        let Some(Instruction::Run { tasks }) = r.next_for(w) else {
            panic!("tasks");
        };
        let mut back = restarted(&r, &path).await;
        assert_eq!(back.tasks.running_on(w), 2);
        // Its first poll after the restart says it holds only the first
        // (the answer with both had reached it before: say so for one).
        let held = vec![TaskRun {
            task: tasks[0].task,
            attempt: tasks[0].attempt,
        }];
        let start = back.poll(w, false, Some(held)).unwrap();
        let PollStart::Now(Instruction::Run { tasks: again }) = start else {
            panic!("the unheld task comes back to it");
        };
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].task, tasks[1].task);
        assert_eq!(again[0].attempt, tasks[1].attempt + 1, "a new run");
        // Confirmation happens once: a later poll changes nothing.
        assert!(back.poll(w, false, Some(Vec::new())).is_some());
        assert_eq!(back.tasks.running_on(w), 2);
    }

    #[test]
    fn dask_workers_take_their_activity_from_dask_and_no_drover_tasks() {
        let mut r = Registry::default();
        let mut req = request(1);
        req.kind = WorkerKind::Dask;
        req.dask_name = Some("dask-worker-0".into());
        let dask = r.register(req);
        let native = r.register(request(2));
        let dask_name = "dask-worker-0".to_string();

        let busy = std::collections::HashMap::from([(dask_name.clone(), 3)]);
        r.set_dask_activity(&busy);
        let w = r.list().into_iter().find(|w| w.id == dask).unwrap();
        assert_eq!((w.running_tasks, w.idle_since_ms), (3, None));

        let idle = std::collections::HashMap::from([(dask_name, 0)]);
        r.set_dask_activity(&idle);
        let w = r.list().into_iter().find(|w| w.id == dask).unwrap();
        assert_eq!(w.running_tasks, 0);
        assert!(w.idle_since_ms.is_some());
        // A native worker's activity is its drover tasks, untouched by Dask's.
        let n = r.list().into_iter().find(|w| w.id == native).unwrap();
        assert_eq!(n.running_tasks, 0);
        // Dask workers are never handed drover tasks; native ones are.
        r.tasks
            .submit(vec![TaskSpec {
                argv: vec!["true".into()],
                cores: 1,
                ..Default::default()
            }])
            .unwrap();
        assert!(r.next_for(dask).is_none());
        assert!(matches!(r.next_for(native), Some(Instruction::Run { .. })));
    }
}
