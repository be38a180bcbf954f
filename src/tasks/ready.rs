//! The ready queue, kept by class: tasks asking for the same things (cores,
//! memory, GPUs, named resources, group) share a class, and a worker looks
//! only at the classes it could hold. Without this, a worker that fits
//! none of the ready tasks (a CPU worker while only GPU tasks wait) would
//! read the whole queue at every poll; with it, each pick costs one look
//! per class that fits.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use super::ask::Class;
use super::fit::Free;
use crate::protocol::{TaskId, TaskSpec};

/// Ready tasks, in submission order, and by class.
#[derive(Debug, Default)]
pub(super) struct Ready {
    all: BTreeSet<TaskId>,
    /// Every class seen, by index; a task keeps its class's index.
    classes: Vec<Class>,
    index: HashMap<Class, u32>,
    /// The ready tasks of each class.
    by_class: Vec<BTreeSet<TaskId>>,
    /// The classes with ready tasks: a pick reads these only, however
    /// many classes were ever seen (a pool whose tasks each ask for their
    /// own amount of memory makes a class per task).
    live: BTreeSet<u32>,
}

impl Ready {
    /// The class of `spec`, made on first sight.
    pub(super) fn class_of(&mut self, spec: &TaskSpec) -> u32 {
        let class = Class::of(spec);
        if let Some(i) = self.index.get(&class) {
            return *i;
        }
        let i = u32::try_from(self.classes.len()).unwrap_or(u32::MAX);
        self.classes.push(class.clone());
        self.index.insert(class, i);
        self.by_class.push(BTreeSet::new());
        i
    }

    pub(super) fn insert(&mut self, id: TaskId, class: u32) {
        self.all.insert(id);
        if let Some(set) = self.by_class.get_mut(class as usize) {
            set.insert(id);
            self.live.insert(class);
        }
    }

    pub(super) fn remove(&mut self, id: TaskId, class: u32) -> bool {
        if let Some(set) = self.by_class.get_mut(class as usize) {
            set.remove(&id);
            if set.is_empty() {
                self.live.remove(&class);
            }
        }
        self.all.remove(&id)
    }

    /// Class `i` (as `class_of` gave it).
    pub(super) fn class(&self, i: u32) -> Option<&Class> {
        self.classes.get(i as usize)
    }

    /// Class `i`, or, should it not be there, the class `spec` asks for:
    /// what a running task holds is counted either way.
    pub(super) fn class_or<'a>(&'a self, i: u32, spec: &TaskSpec) -> Cow<'a, Class> {
        match self.class(i) {
            Some(c) => Cow::Borrowed(c),
            None => Cow::Owned(Class::of(spec)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Every ready task, in submission order.
    pub(super) fn iter(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.all.iter().copied()
    }

    /// Each class with ready tasks, its index and its tasks.
    pub(super) fn classes(&self) -> impl Iterator<Item = (u32, &Class, &BTreeSet<TaskId>)> {
        self.live
            .iter()
            .map(|&i| (i, &self.classes[i as usize], &self.by_class[i as usize]))
    }

    /// Empties the queue (the classes stay known).
    pub(super) fn clear(&mut self) {
        self.all.clear();
        for &i in &self.live {
            self.by_class[i as usize].clear();
        }
        self.live.clear();
    }

    /// Picks ready tasks for a worker with `free` room, in submission
    /// order among the classes that fit, taking each one's share from
    /// `free`; `ok` may pass over a task (a time limit its allocation
    /// would not outlast). Stops when `free` has no cores left.
    pub(super) fn pick(&self, free: &mut Free<'_>, ok: impl Fn(TaskId) -> bool) -> Vec<TaskId> {
        // The next candidate of each class that fits.
        let mut heads: Vec<(u32, Option<TaskId>)> = self
            .classes()
            .filter(|(_, class, _)| free.fits(class))
            .map(|(i, _, set)| (i, set.first().copied()))
            .collect();
        let mut chosen = Vec::new();
        while !free.full() {
            let Some(slot) = heads
                .iter()
                .enumerate()
                .filter_map(|(i, (_, head))| head.map(|id| (id, i)))
                .min()
                .map(|(_, i)| i)
            else {
                break;
            };
            let (class, head) = heads[slot];
            let id = head.expect("chosen for its head");
            let set = &self.by_class[class as usize];
            let next = set.range(TaskId(id.0 + 1)..).next().copied();
            heads[slot].1 = next;
            let c = &self.classes[class as usize];
            if !free.fits(c) {
                heads[slot].1 = None;
                continue;
            }
            if ok(id) {
                free.take(c);
                chosen.push(id);
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Room;

    fn spec(cores: u32, gpus: u32) -> TaskSpec {
        TaskSpec {
            argv: vec!["true".into()],
            cores,
            gpus,
            ..TaskSpec::default()
        }
    }

    #[test]
    fn a_worker_picks_in_submission_order_among_the_classes_it_fits() {
        let mut r = Ready::default();
        let gpu = r.class_of(&spec(1, 1));
        let cpu = r.class_of(&spec(1, 0));
        let wide = r.class_of(&spec(4, 0));
        assert_eq!(r.class_of(&spec(1, 1)), gpu, "same asks, same class");
        for i in 1..=6 {
            r.insert(TaskId(i), [gpu, cpu, wide][(i as usize - 1) % 3]);
        }
        // A 3-core worker without GPUs: only the 1-core CPU tasks fit.
        let mut free = Free::new(Room::cores(3), None);
        assert_eq!(r.pick(&mut free, |_| true), [TaskId(2), TaskId(5)]);
        // A 6-core GPU worker: in order, as far as its room goes.
        let room = Room {
            gpus: 1,
            ..Room::cores(6)
        };
        let mut free = Free::new(room, None);
        assert_eq!(
            r.pick(&mut free, |_| true),
            [TaskId(1), TaskId(2), TaskId(3)]
        );
        // A task passed over by `ok` is left for others.
        let mut free = Free::new(Room::cores(8), None);
        assert_eq!(
            r.pick(&mut free, |id| id != TaskId(2)),
            [TaskId(3), TaskId(5)]
        );
        assert!(r.remove(TaskId(2), cpu) && !r.remove(TaskId(2), cpu));
        assert_eq!(r.iter().count(), 5);
        assert!(r.remove(TaskId(5), cpu));
        let live: Vec<u32> = r.classes().map(|(i, _, _)| i).collect();
        assert_eq!(live, [gpu, wide], "a class with no ready task is not read");
        r.clear();
        assert!(r.is_empty() && r.classes().next().is_none());
    }
}
