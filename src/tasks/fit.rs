//! Whether a task fits a worker: what the worker has (`Room`), what its
//! running tasks hold (`Held`), and what is left for the next (`Free`).
//! Cores, memory, GPUs, named resources and the group all count; pure
//! arithmetic, saturating, on numbers already bounded at submission.

use std::collections::{BTreeMap, BTreeSet};

use super::ask::{Ask, Class};
use crate::protocol::{TaskId, TaskSpec, WorkerShape};

/// No named resources.
static NONE: BTreeMap<String, u64> = BTreeMap::new();

/// What a worker has to run tasks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room<'a> {
    pub cores: u32,
    /// Bytes of memory (`u64::MAX`: not known, not limited).
    pub memory: u64,
    pub gpus: u32,
    pub resources: &'a BTreeMap<String, u64>,
    pub group: Option<&'a str>,
}

impl Room<'static> {
    /// Cores only: memory not limited, no GPUs, no resources, no group.
    pub fn cores(cores: u32) -> Room<'static> {
        Room {
            cores,
            memory: u64::MAX,
            gpus: 0,
            resources: &NONE,
            group: None,
        }
    }
}

/// What a worker's running tasks hold.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub(super) ask: Ask,
    pub(super) tasks: BTreeSet<TaskId>,
}

impl Held {
    /// Task `id`, of class `c`, now holds its share.
    pub(super) fn hold(&mut self, id: TaskId, c: &Class) {
        if self.tasks.insert(id) {
            self.ask.add(c, 1);
        }
    }

    /// Task `id`, of class `c`, gave its share back.
    pub(super) fn release(&mut self, id: TaskId, c: &Class) {
        if self.tasks.remove(&id) {
            self.ask.take(c);
        }
    }
}

/// What is left of a worker for the tasks handed out next.
pub(super) struct Free<'a> {
    /// Named resources left: only those the worker has.
    left: Ask,
    group: Option<&'a str>,
}

impl<'a> Free<'a> {
    pub(super) fn new(room: Room<'a>, held: Option<&Held>) -> Free<'a> {
        let mut left = Ask {
            cores: room.cores.into(),
            memory: room.memory,
            gpus: room.gpus.into(),
            resources: room.resources.clone(),
        };
        if let Some(h) = held {
            left.take_sum(&h.ask);
        }
        Free {
            left,
            group: room.group,
        }
    }

    /// Whether no core is left.
    pub(super) fn full(&self) -> bool {
        self.left.cores == 0
    }

    /// Whether a task of class `c` fits in what is left.
    pub(super) fn fits(&self, c: &Class) -> bool {
        let left = &self.left;
        u64::from(c.cores) <= left.cores
            && c.memory <= left.memory
            && u64::from(c.gpus) <= left.gpus
            && c.group.as_deref().is_none_or(|g| Some(g) == self.group)
            && c.resources
                .iter()
                .all(|(k, v)| left.resources.get(k).is_some_and(|l| l >= v))
    }

    /// Takes a class `c` task's share (it fits).
    pub(super) fn take(&mut self, c: &Class) {
        self.left.take(c);
    }
}

/// Why no worker of `shapes` could ever hold `spec`, or `None` when one
/// could. Shapes that do not say how many GPUs they have are taken to have
/// enough.
pub(super) fn unfit(spec: &TaskSpec, shapes: &[WorkerShape]) -> Option<String> {
    if shapes.is_empty() {
        return None;
    }
    if let Some(g) = &spec.group {
        if !shapes.iter().any(|s| s.group.as_ref() == Some(g)) {
            let groups: Vec<&str> = shapes.iter().filter_map(|s| s.group.as_deref()).collect();
            return Some(match groups.is_empty() {
                true => format!("it asks for group {g}, but the pool has no groups"),
                false => format!(
                    "it asks for group {g}, but the pool's groups are {}",
                    groups.join(", ")
                ),
            });
        }
    }
    let class = Class::of(spec);
    if shapes.iter().any(|s| holds(&class, s)) {
        return None;
    }
    let offered: Vec<String> = shapes.iter().map(ToString::to_string).collect();
    Some(format!(
        "it asks for {}, but no worker of the pool has that much ({})",
        asked(spec),
        offered.join("; ")
    ))
}

/// Whether a worker of shape `s` could ever hold a task of class `c`.
/// A shape that does not say how many GPUs it has is taken to have enough.
pub(super) fn holds(c: &Class, s: &WorkerShape) -> bool {
    c.group.as_ref().is_none_or(|g| s.group.as_ref() == Some(g))
        && c.cores <= s.cores
        && c.memory <= s.memory_bytes
        && s.gpus.is_none_or(|n| c.gpus <= n)
        && c.resources
            .iter()
            .all(|(k, v)| s.resources.get(k).is_some_and(|has| has >= v))
}

/// What a task asks for, in words: `2 cores, 1 GPU, licence=1`.
fn asked(spec: &TaskSpec) -> String {
    let mut parts = vec![format!("{} cores", spec.cores)];
    if let Some(m) = spec.memory_bytes {
        parts.push(crate::config::Memory::from_bytes(m).human());
    }
    match spec.gpus {
        0 => {}
        1 => parts.push("1 GPU".into()),
        n => parts.push(format!("{n} GPUs")),
    }
    parts.extend(spec.resources.iter().map(|(k, v)| format!("{k}={v}")));
    if let Some(g) = &spec.group {
        parts.push(format!("in group {g}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cores: u32, gpus: u32, res: &[(&str, u64)], group: Option<&str>) -> TaskSpec {
        TaskSpec {
            argv: vec!["true".into()],
            cores,
            gpus,
            resources: res.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            group: group.map(String::from),
            ..TaskSpec::default()
        }
    }

    #[test]
    fn gpus_resources_and_group_all_have_to_fit() {
        let licences: BTreeMap<String, u64> = [("licence".to_string(), 2)].into();
        let room = Room {
            cores: 8,
            memory: u64::MAX,
            gpus: 2,
            resources: &licences,
            group: Some("gpu"),
        };
        let mut held = Held::default();
        held.hold(TaskId(1), &Class::of(&spec(1, 1, &[("licence", 1)], None)));
        let mut free = Free::new(room, Some(&held));
        assert!(free.fits(&Class::of(&spec(1, 1, &[], Some("gpu")))));
        assert!(
            !free.fits(&Class::of(&spec(1, 2, &[], None))),
            "one GPU is held"
        );
        assert!(
            !free.fits(&Class::of(&spec(1, 0, &[], Some("cpu")))),
            "another group"
        );
        assert!(
            !free.fits(&Class::of(&spec(1, 0, &[("disk", 1)], None))),
            "not offered"
        );
        assert!(free.fits(&Class::of(&spec(1, 0, &[("licence", 1)], None))));
        free.take(&Class::of(&spec(1, 1, &[("licence", 1)], None)));
        assert!(
            !free.fits(&Class::of(&spec(1, 0, &[("licence", 1)], None))),
            "both taken"
        );
        assert!(
            !free.fits(&Class::of(&spec(1, 1, &[], None))),
            "both GPUs taken"
        );
        held.release(TaskId(1), &Class::of(&spec(1, 1, &[("licence", 1)], None)));
        let back = &held.ask;
        assert!(back.resources.values().all(|n| *n == 0) && back.gpus == 0 && back.cores == 0);
        assert!(!Free::new(Room::cores(4), None).fits(&Class::of(&spec(1, 1, &[], None))));
    }

    #[test]
    fn a_task_no_shape_holds_is_told_why() {
        let shape = |group: &str, gpus| WorkerShape {
            group: Some(group.into()),
            cores: 4,
            memory_bytes: 1 << 30,
            gpus: Some(gpus),
            resources: BTreeMap::new(),
        };
        let shapes = [shape("cpu", 0), shape("gpu", 2)];
        assert_eq!(unfit(&spec(1, 2, &[], None), &shapes), None);
        assert_eq!(unfit(&spec(1, 1, &[], Some("gpu")), &shapes), None);
        let why = unfit(&spec(1, 1, &[], Some("cpu")), &shapes).unwrap();
        assert!(
            why.contains("1 GPU, in group cpu") && why.contains("gpu: 4 cores"),
            "{why}"
        );
        let why = unfit(&spec(1, 0, &[], Some("big")), &shapes).unwrap();
        assert_eq!(
            why,
            "it asks for group big, but the pool's groups are cpu, gpu"
        );
        let why = unfit(&spec(1, 0, &[("licence", 1)], None), &shapes).unwrap();
        assert!(why.contains("licence=1"), "{why}");
        assert_eq!(
            unfit(&spec(64, 9, &[], None), &[]),
            None,
            "no shapes: unknown"
        );
        let unknown = WorkerShape {
            gpus: None,
            ..shape("any", 0)
        };
        assert_eq!(unfit(&spec(1, 8, &[], None), &[unknown]), None);
    }
}
