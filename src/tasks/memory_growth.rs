//! A task the kernel killed for memory (its worker's job cgroup was full)
//! runs again asking for more: its ask grows by the pool's
//! `task-memory-growth` factor, up to the largest worker's memory. Those
//! runs use none of its retries: the growth itself is the bound, since
//! once the ask reaches the largest worker a further kill is a failure
//! like any other. A task that asked for no memory is not grown (nothing
//! says how much it needs), and fails as any other.

use super::engine::{Engine, Task};
use crate::config::Memory;
use crate::protocol::{TaskId, TaskState};

impl Task {
    /// Runs that were not its own doing: lost, stopped, or killed for
    /// memory and grown. None of them uses a retry.
    pub(super) fn free_runs(&self) -> u32 {
        self.lost
            .saturating_add(self.stopped)
            .saturating_add(self.grown)
    }
}

impl Engine {
    /// The larger ask for `id`'s next run when its run was killed for
    /// memory and growing is on and still possible.
    pub(super) fn grown_ask(&self, id: TaskId, oom_killed: bool) -> Option<u64> {
        let percent = self.memory_growth.filter(|_| oom_killed)?;
        let t = self.get(id)?;
        let ask = t.spec.memory_bytes?;
        let cap = self.max_memory?;
        let grown = u128::from(ask) * u128::from(percent) / 100;
        let want = u64::try_from(grown).unwrap_or(u64::MAX).min(cap);
        (want > ask).then_some(want)
    }

    /// Queues `id` again asking for `bytes` of memory.
    pub(super) fn grow(&mut self, id: TaskId, bytes: u64) {
        let mut spec = self.get(id).expect("exists").spec.clone();
        let was = spec.memory_bytes.unwrap_or_default();
        spec.memory_bytes = Some(bytes);
        let class = self.ready.class_of(&spec);
        let t = self.get_mut_task(id);
        t.spec = spec;
        t.class = class;
        t.grown = t.grown.saturating_add(1);
        t.state = TaskState::Ready;
        t.reason = Some(format!(
            "run {} was killed for memory with {}; running it again with {}",
            t.attempts,
            Memory::from_bytes(was),
            Memory::from_bytes(bytes)
        ));
        self.ready.insert(id, class);
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::{Completion, TaskOutput, TaskSpec, TaskState, WorkerId};
    use crate::tasks::{Engine, Room};

    const W: WorkerId = WorkerId(1);
    const GIB: u64 = 1 << 30;

    fn oom_killed(a: &crate::protocol::Assignment) -> Completion {
        Completion {
            task: a.task,
            attempt: a.attempt,
            output: TaskOutput {
                signal: Some(9),
                oom_killed: true,
                error: Some("killed for memory".into()),
                ..Default::default()
            },
        }
    }

    fn room() -> Room<'static> {
        Room {
            memory: 8 * GIB,
            ..Room::cores(1)
        }
    }

    #[test]
    fn a_task_killed_for_memory_asks_for_more_up_to_the_largest_worker_then_fails() {
        let mut e = Engine::default();
        e.set_memory_growth(Some(200));
        e.set_max_memory(3 * GIB);
        let spec = TaskSpec {
            argv: vec!["x".into()],
            memory_bytes: Some(GIB),
            ..Default::default()
        };
        let id = e.submit(vec![spec]).unwrap()[0];
        let a = e.assign(W, room(), None, 0);
        e.complete(W, oom_killed(&a[0]));
        let info = e.info(id).unwrap();
        assert_eq!((info.state, info.grown), (TaskState::Ready, 1));
        assert!(info.reason.unwrap().contains("with 2GiB"), "twice the ask");
        let a = e.assign(W, room(), None, 0);
        e.complete(W, oom_killed(&a[0]));
        assert!(
            e.info(id).unwrap().reason.unwrap().contains("with 3GiB"),
            "capped"
        );
        // At the largest worker's memory: a failure like any other (no retries).
        let a = e.assign(W, room(), None, 0);
        e.complete(W, oom_killed(&a[0]));
        let info = e.info(id).unwrap();
        assert_eq!(
            (info.state, info.attempts, info.grown),
            (TaskState::Failed, 3, 2)
        );
    }

    #[test]
    fn without_an_ask_or_with_growth_off_a_kill_for_memory_is_a_failure() {
        for (growth, memory) in [(Some(200), None), (None, Some(GIB))] {
            let mut e = Engine::default();
            e.set_memory_growth(growth);
            e.set_max_memory(8 * GIB);
            let spec = TaskSpec {
                argv: vec!["x".into()],
                memory_bytes: memory,
                ..Default::default()
            };
            let id = e.submit(vec![spec]).unwrap()[0];
            let a = e.assign(W, room(), None, 0);
            e.complete(W, oom_killed(&a[0]));
            assert_eq!(e.info(id).unwrap().state, TaskState::Failed);
        }
    }
}
