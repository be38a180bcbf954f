//! Compacting the journal: the registry and its task book written as one
//! snapshot (a head record, then the tasks in bounded records) in place
//! of the log of changes that built them, and read back on a restart.
//!
//! The snapshot is taken with the registry locked, so it holds exactly
//! the effect of every record queued before it; the journal's writer puts
//! it in place after those records are durable.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::registry::{Entry, Registry};
use crate::journal::{Op, Snapshot, WorkerImage};
use crate::protocol::unix_ms;
use crate::tasks::{EngineImage, TaskImage};

/// Bytes of tasks (roughly, as JSON) per snapshot record: far below the
/// largest record a journal takes, whatever the escaping.
const CHUNK_BYTES: u64 = 4 << 20;

impl Registry {
    /// Compacts the journal if it has grown enough (see `Journal::due`);
    /// returns whether it did.
    pub(crate) fn compact_if_due(&mut self) -> bool {
        let Some(journal) = self.journal.as_ref().filter(|j| j.due()) else {
            return false;
        };
        let grown = journal.grown();
        let started = StdInstant::now();
        let records = self.snapshot();
        let took_ms = started.elapsed().as_millis() as u64;
        let tasks = match records.first() {
            Some(Op::Snapshot(s)) => s.tasks,
            _ => 0,
        };
        let done = self.journal.as_mut().is_some_and(|j| j.compact(records));
        tracing::info!(grown, tasks, took_ms, "journal snapshot taken");
        done
    }

    /// Compacts the journal (if any) after it grows by `after` bytes:
    /// what is notified when that is due.
    pub(crate) fn compaction_due(&mut self, after: u64) -> Option<Arc<Notify>> {
        Some(self.journal.as_mut()?.compact_after(after))
    }

    /// The records of a snapshot of everything.
    pub(crate) fn snapshot(&self) -> Vec<Op> {
        let workers: Vec<WorkerImage> = self
            .workers
            .values()
            .map(|e| WorkerImage {
                info: e.info.clone(),
                pid: e.pid,
                instruction: e.instruction.clone(),
                cancels: e.cancels.clone(),
            })
            .collect();
        let image = self.tasks.image();
        let mut records = vec![Op::Snapshot(Box::new(Snapshot {
            at_ms: unix_ms(),
            next_worker: self.next_id,
            workers,
            tasks: image.tasks.len() as u64,
            max_cores: image.max_cores,
            max_memory: image.max_memory,
            shapes: image.shapes,
            busy: image.busy,
            pool: self.pool,
            group_pools: self.group_pools.clone(),
        }))];
        let mut chunk = Vec::new();
        let mut bytes = 0u64;
        for task in image.tasks {
            bytes = bytes.saturating_add(approx_bytes(&task));
            chunk.push(task);
            if bytes >= CHUNK_BYTES {
                records.push(Op::SnapshotTasks {
                    tasks: std::mem::take(&mut chunk),
                });
                bytes = 0;
            }
        }
        if !chunk.is_empty() {
            records.push(Op::SnapshotTasks { tasks: chunk });
        }
        records
    }

    /// Replays a snapshot's head: the workers as they were; the tasks
    /// come in the records after it.
    pub(super) fn restore_snapshot(&mut self, s: Snapshot) -> Result<(), String> {
        if self.restoring.is_some() {
            return Err("a snapshot begins before the one before it has all its tasks".into());
        }
        self.next_id = s.next_worker;
        self.pool = s.pool;
        self.group_pools = s.group_pools;
        self.workers.clear();
        self.names.clear();
        for w in s.workers {
            if w.info.id.0 > s.next_worker {
                return Err(format!(
                    "worker {} is beyond the last worker id given out",
                    w.info.id
                ));
            }
            let entry = Entry {
                info: w.info,
                pid: w.pid,
                last_seen: Instant::now(),
                wake: Arc::new(Notify::new()),
                instruction: w.instruction,
                cancels: w.cancels,
                unconfirmed: false,
                awaited: false,
            };
            // Each name keeps its last worker.
            let id = entry.info.id;
            let last = self.names.entry(entry.info.name.clone()).or_insert(id);
            *last = (*last).max(id);
            self.workers.insert(entry.info.id, entry);
        }
        let image = EngineImage {
            tasks: Vec::new(),
            max_cores: s.max_cores,
            max_memory: s.max_memory,
            shapes: s.shapes,
            busy: s.busy,
        };
        self.restoring = Some((s.tasks, image));
        self.finish_if_whole()
    }

    /// Replays the next tasks of a snapshot.
    pub(super) fn restore_snapshot_tasks(&mut self, tasks: Vec<TaskImage>) -> Result<(), String> {
        let Some((expected, image)) = &mut self.restoring else {
            return Err("snapshot tasks without a snapshot before them".into());
        };
        image.tasks.extend(tasks);
        if image.tasks.len() as u64 > *expected {
            return Err(format!(
                "the snapshot has more tasks than the {expected} it announced"
            ));
        }
        self.finish_if_whole()
    }

    /// Once a snapshot has all its tasks, they become the book.
    fn finish_if_whole(&mut self) -> Result<(), String> {
        let whole = self
            .restoring
            .as_ref()
            .is_some_and(|(n, image)| image.tasks.len() as u64 == *n);
        if whole {
            let (_, image) = self.restoring.take().expect("checked");
            self.tasks.restore(image).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// After a replay: a snapshot still waiting for tasks is damage.
    pub(crate) fn replay_finished(&self) -> Result<(), String> {
        match &self.restoring {
            Some((n, image)) => Err(format!(
                "the snapshot announced {n} tasks and the journal holds {}",
                image.tasks.len()
            )),
            None => Ok(()),
        }
    }
}

/// Roughly how many bytes a task takes as JSON.
fn approx_bytes(t: &TaskImage) -> u64 {
    let spec: usize = t.spec.argv.iter().map(String::len).sum::<usize>()
        + t.spec
            .env
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + t.spec.name.as_ref().map_or(0, String::len)
        + t.spec.cwd.as_ref().map_or(0, String::len)
        + t.spec.deps.len() * 16;
    let output = t.output.as_ref().map_or(0, crate::tasks::outputs::size);
    (spec as u64)
        .saturating_add(output)
        .saturating_add(t.reason.as_ref().map_or(0, |r| r.len() as u64))
        .saturating_add(256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::file::tests::identity;
    use crate::journal::{Journal, PoolMode};
    use crate::protocol::{Completion, Instruction, TaskSpec, WorkerId};
    use crate::scheduler::registry::tests::request;

    fn task(i: usize) -> TaskSpec {
        TaskSpec {
            argv: vec!["echo".into(), format!("{i}:{}", "x".repeat(200))],
            ..Default::default()
        }
    }

    fn done(t: &crate::tasks::Assignment) -> Completion {
        Completion {
            task: t.task,
            attempt: t.attempt,
            output: crate::protocol::TaskOutput {
                exit_code: Some(0),
                stdout: format!("out {}", t.task),
                ..Default::default()
            },
        }
    }

    /// What two registries must agree on.
    fn seen(r: &Registry) -> impl PartialEq + std::fmt::Debug {
        let workers: Vec<_> = r
            .list()
            .into_iter()
            .map(|w| (w.id, w.state, w.exit_reason, w.running_tasks))
            .collect();
        let pools = (r.pool_mode(None), r.pool_mode(Some("gpu")));
        (
            workers,
            r.tasks.list(None),
            pools,
            r.next_id,
            r.tasks.shapes().to_vec(),
            // What the runs used, those under way counted to one moment.
            r.tasks.busy_totals(10_000_000_000_000),
            r.tasks.cooldown_idle(),
        )
    }

    #[tokio::test]
    async fn a_compacted_journal_replays_to_the_same_registry_and_takes_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut r = Registry::default();
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(&identity());
        r.keep_journal(journal);
        let a = r.register(request(1));
        let b = r.register(request(2));
        r.submit((0..40).map(task).collect()).unwrap();
        let Some(Instruction::Run { tasks }) = r.next_for(a) else {
            panic!("tasks for a");
        };
        for t in &tasks[..3] {
            assert!(r.complete(a, done(t)));
        }
        assert!(matches!(r.next_for(b), Some(Instruction::Run { .. })));
        r.deregister(b, "bye".into(), crate::protocol::Departure::Orderly);
        r.retire(a, "closing");
        r.set_pool_mode(None, PoolMode::Fixed { jobs: 3 });
        r.set_pool_mode(Some("gpu"), PoolMode::Fixed { jobs: 1 });
        // Idle time kept for adapt's cooldown: in the snapshot, and set
        // again after it (a total, not an increment).
        r.set_cooldown_idle(Some("gpu".into()), 9_000);
        r.set_cooldown_idle(None, 1_000);
        r.set_shapes(vec![crate::protocol::WorkerShape {
            group: Some("gpu".into()),
            cores: 4,
            memory_bytes: 1 << 30,
            gpus: Some(2),
            resources: Default::default(),
        }]);
        let before_compaction = std::fs::metadata(&path).unwrap().len();

        let due = r.journal.as_mut().unwrap().compact_after(1000);
        due.notified().await;
        assert!(r.compact_if_due(), "due: it grew and has no snapshot yet");
        r.journal.as_mut().unwrap().compact_after(1 << 30);
        assert!(!r.compact_if_due(), "not due again until it grows");
        // Changes after the snapshot go on after it in the new file.
        let c = r.register(request(3));
        let Some(Instruction::Run { tasks: on_c }) = r.next_for(c) else {
            panic!("tasks for c");
        };
        assert!(r.complete(c, done(&on_c[0])));
        r.set_cooldown_idle(None, 2_500);
        let (waiter, last) = r.journal_mark().unwrap();
        waiter.durable(last).await.unwrap();

        let ops = Journal::read(&path).unwrap();
        assert!(matches!(ops[0], Op::Identity(_)));
        assert!(matches!(ops[1], Op::Snapshot(_)), "{:?}", ops[1]);
        assert!(
            !ops.iter().any(|o| matches!(o, Op::Submit { .. })),
            "the log before the snapshot is gone"
        );
        let mut back = Registry::default();
        for op in ops {
            back.replay(op).unwrap();
        }
        back.replay_finished().unwrap();
        assert_eq!(seen(&back), seen(&r));
        let cooldown = back.tasks.cooldown_idle();
        assert_eq!(cooldown.get(&Some("gpu".to_string())), Some(&9_000));
        assert_eq!(cooldown.get(&None), Some(&2_500));
        assert!(
            !r.tasks.busy_totals(10_000_000_000_000).is_empty(),
            "runs were counted"
        );
        assert_eq!(back.register(request(4)), WorkerId(4));
        assert!(before_compaction > 0);
    }

    #[test]
    fn a_snapshot_with_its_tasks_in_many_records_comes_back_whole_and_a_cut_one_is_damage() {
        let mut r = Registry::default();
        let w = r.register(request(1));
        let big = |i: usize| TaskSpec {
            argv: vec!["echo".into(), "y".repeat(300_000 + i)],
            ..Default::default()
        };
        r.submit((0..30).map(big).collect()).unwrap();
        r.next_for(w);
        let records = r.snapshot();
        let chunks = records.len() - 1;
        assert!(chunks >= 2, "30 tasks of 300 KB take several records");
        for op in &records {
            let bytes = serde_json::to_vec(op).unwrap().len();
            assert!(bytes < crate::journal::frame::MAX_RECORD, "{bytes}");
        }
        let mut back = Registry::default();
        for op in records.clone() {
            back.replay(op).unwrap();
        }
        back.replay_finished().unwrap();
        assert_eq!(seen(&back), seen(&r));

        let mut cut = Registry::default();
        for op in records.into_iter().take(chunks) {
            cut.replay(op).unwrap();
        }
        let why = cut.replay_finished().unwrap_err();
        assert!(why.contains("announced 30 tasks"), "{why}");
    }
}
