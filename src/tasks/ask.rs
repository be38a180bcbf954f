//! What a task asks for (cores, memory, GPUs, named resources, group):
//! tasks with equal asks share a class in the ready queue, and a worker's
//! free room is matched against it. Asks are summed and taken away in one
//! place, `Ask`: what a worker's running tasks hold, what is left of a
//! worker, and what the work asks of a group are all sums of classes.

use std::collections::BTreeMap;

use crate::protocol::{TaskSpec, WorkerShape};

/// What a task asks for; tasks with equal asks share a class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Class {
    pub(super) cores: u32,
    pub(super) memory: u64,
    pub(super) gpus: u32,
    pub(super) resources: BTreeMap<String, u64>,
    pub(super) group: Option<String>,
}

impl Class {
    pub(super) fn of(spec: &TaskSpec) -> Class {
        Class {
            cores: spec.cores,
            memory: spec.memory_bytes.unwrap_or(0),
            gpus: spec.gpus,
            resources: spec.resources.clone(),
            group: spec.group.clone(),
        }
    }
}

/// A sum of asks, saturating: what running tasks hold, what is left of a
/// worker, what ready and running tasks ask of a group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ask {
    pub cores: u64,
    pub memory: u64,
    pub gpus: u64,
    /// Named resources.
    pub resources: BTreeMap<String, u64>,
}

impl Ask {
    /// Adds `n` tasks of class `c`.
    pub(super) fn add(&mut self, c: &Class, n: u64) {
        self.cores = self
            .cores
            .saturating_add(u64::from(c.cores).saturating_mul(n));
        self.memory = self.memory.saturating_add(c.memory.saturating_mul(n));
        self.gpus = self
            .gpus
            .saturating_add(u64::from(c.gpus).saturating_mul(n));
        for (name, amount) in &c.resources {
            let sum = self.resources.entry(name.clone()).or_default();
            *sum = sum.saturating_add(amount.saturating_mul(n));
        }
    }

    /// Takes one task of class `c` away; named resources this sum does not
    /// have stay absent.
    pub(super) fn take(&mut self, c: &Class) {
        self.cores = self.cores.saturating_sub(c.cores.into());
        self.memory = self.memory.saturating_sub(c.memory);
        self.gpus = self.gpus.saturating_sub(c.gpus.into());
        for (name, amount) in &c.resources {
            if let Some(left) = self.resources.get_mut(name) {
                *left = left.saturating_sub(*amount);
            }
        }
    }

    /// Takes a whole sum away (what running tasks hold, from a worker).
    pub(super) fn take_sum(&mut self, other: &Ask) {
        self.cores = self.cores.saturating_sub(other.cores);
        self.memory = self.memory.saturating_sub(other.memory);
        self.gpus = self.gpus.saturating_sub(other.gpus);
        for (name, amount) in &other.resources {
            if let Some(left) = self.resources.get_mut(name) {
                *left = left.saturating_sub(*amount);
            }
        }
    }

    /// How many workers of `shape` hold it: enough for its cores, its
    /// memory and its GPUs.
    pub fn workers(&self, shape: &WorkerShape) -> u64 {
        let need = |asked: u64, each: u64| match (asked, each) {
            (0, _) | (_, 0) => 0,
            (a, e) => a.div_ceil(e),
        };
        need(self.cores, shape.cores.into())
            .max(need(self.memory, shape.memory_bytes))
            .max(need(self.gpus, shape.gpus.unwrap_or(0).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_add_and_take_away_saturating() {
        let c = Class {
            cores: 2,
            memory: 10,
            gpus: 1,
            resources: BTreeMap::from([("licence".to_string(), 1)]),
            group: None,
        };
        let mut sum = Ask::default();
        sum.add(&c, 3);
        assert_eq!((sum.cores, sum.memory, sum.gpus), (6, 30, 3));
        assert_eq!(sum.resources["licence"], 3);
        for _ in 0..5 {
            sum.take(&c);
        }
        assert_eq!((sum.cores, sum.memory, sum.gpus), (0, 0, 0));
        assert_eq!(sum.resources["licence"], 0);
        let mut none = Ask::default();
        none.take(&c);
        assert!(none.resources.is_empty(), "resources it lacks stay absent");
    }
}
