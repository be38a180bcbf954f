//! What the work asks of each group of a pool: the demand an adaptive
//! group sizes itself to. A running task counts for the group of the
//! worker running it. A ready task counts for the first group, in the
//! order the pool declared them (cheapest first), whose workers could hold
//! it, passing over groups whose jobs are stalled in Slurm's queue when a
//! later group could hold it too.

use super::ask::Ask;
use super::engine::Engine;
use crate::protocol::{WorkerId, WorkerShape};

impl Engine {
    /// What the ready and running tasks ask of each of the pool's shapes
    /// (one per group, as `set_shapes` gave them). `group_of` names the
    /// group of a worker; `stalled[i]` says shape `i`'s jobs wait long in
    /// Slurm's queue.
    pub fn demand(
        &self,
        group_of: impl Fn(WorkerId) -> Option<String>,
        stalled: impl Fn(usize) -> bool,
    ) -> Vec<Ask> {
        let shapes = &self.shapes;
        let mut asks = vec![Ask::default(); shapes.len().max(1)];
        for (worker, held) in &self.busy {
            let group = group_of(*worker);
            let i = shapes.iter().position(|s| s.group == group).unwrap_or(0);
            for id in &held.tasks {
                if let Some(c) = self.get(*id).and_then(|t| self.ready.class(t.class)) {
                    asks[i].add(c, 1);
                }
            }
        }
        // Ready tasks by class: one decision per class, not per task.
        for (_, class, ready) in self.ready.classes() {
            let holds = |s: &WorkerShape| super::fit::holds(class, s);
            let first = shapes.iter().position(holds);
            let moving = shapes
                .iter()
                .enumerate()
                .position(|(i, s)| !stalled(i) && holds(s));
            if let Some(i) = moving.or(first).or((shapes.is_empty()).then_some(0)) {
                asks[i].add(class, ready.len() as u64);
            }
        }
        asks
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::protocol::TaskSpec;
    use crate::tasks::Room;

    fn shape(group: &str, cores: u32, memory_gib: u64, gpus: u32) -> WorkerShape {
        WorkerShape {
            group: Some(group.into()),
            cores,
            memory_bytes: memory_gib << 30,
            gpus: Some(gpus),
            resources: BTreeMap::new(),
        }
    }

    fn task(cores: u32, memory_gib: u64, gpus: u32) -> TaskSpec {
        TaskSpec {
            argv: vec!["true".into()],
            cores,
            memory_bytes: (memory_gib > 0).then_some(memory_gib << 30),
            gpus,
            ..TaskSpec::default()
        }
    }

    #[test]
    fn each_task_counts_for_the_first_group_that_holds_it() {
        let mut e = Engine::default();
        e.set_shapes(vec![
            shape("small", 4, 4, 0),
            shape("big", 4, 64, 0),
            shape("gpu", 8, 32, 2),
        ]);
        let mut batch: Vec<TaskSpec> = (0..10).map(|_| task(1, 1, 0)).collect();
        batch.extend((0..3).map(|_| task(1, 40, 0)));
        batch.extend((0..5).map(|_| task(1, 0, 1)));
        e.submit(batch).unwrap();
        let asks = e.demand(|_| None, |_| false);
        assert_eq!(
            asks[0],
            Ask {
                cores: 10,
                memory: 10 << 30,
                gpus: 0,
                resources: Default::default(),
            }
        );
        assert_eq!(asks[1].memory, 120 << 30);
        assert_eq!(
            asks[1].workers(&e.shapes[1]),
            2,
            "120 GiB on 64 GiB workers"
        );
        assert_eq!(asks[2].gpus, 5);
        assert_eq!(asks[2].workers(&e.shapes[2]), 3, "5 GPUs on 2-GPU workers");
        // A stalled small group lets the big one take the small tasks.
        let asks = e.demand(|_| None, |i| i == 0);
        assert_eq!(asks[0].cores, 0);
        assert_eq!(asks[1].cores, 13);
    }

    #[test]
    fn a_running_task_counts_for_its_workers_group() {
        let mut e = Engine::default();
        e.set_shapes(vec![shape("small", 4, 4, 0), shape("big", 4, 64, 0)]);
        e.submit(vec![task(2, 1, 0)]).unwrap();
        let room = Room {
            memory: 64 << 30,
            group: Some("big"),
            ..Room::cores(4)
        };
        assert_eq!(e.assign(WorkerId(7), room, None, 0).len(), 1);
        let asks = e.demand(|w| (w == WorkerId(7)).then(|| "big".to_string()), |_| false);
        assert_eq!((asks[0].cores, asks[1].cores), (0, 2));
    }

    #[test]
    fn a_pool_without_groups_asks_of_its_one_shape() {
        let mut e = Engine::default();
        e.submit(vec![task(3, 0, 0), task(2, 0, 0)]).unwrap();
        assert_eq!(
            e.demand(|_| None, |_| false),
            [Ask {
                cores: 5,
                memory: 0,
                gpus: 0,
                resources: Default::default(),
            }]
        );
    }
}
