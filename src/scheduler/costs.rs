//! What the pool cost, as the scheduler reports it (`GET /v1/report`):
//! the pool's jobs' allocations, which the pool reads from Slurm's
//! accounting at its own pace and hands over, against the busy time of
//! the tasks, which the book of tasks keeps (`tasks/busy.rs`). Without an
//! allocation from Slurm (no accounting kept, slurmrestd, or a scheduler
//! serving no pool) each worker's lifetime stands in for its job's, and
//! the report says so.

use std::collections::{BTreeMap, HashMap};

use super::registry::Registry;
use super::Shared;
use crate::accounting::{self, Allocation, Inputs, Report, ReportSource};
use crate::protocol::{unix_ms, WorkerInfo};
use crate::slurm::tres::Tres;

/// The pool's side of its cost.
pub(crate) struct Costs {
    /// When the pool began (Unix ms), kept in the journal's identity: the
    /// window a restarted pool asks Slurm's accounting about.
    pub(crate) began_ms: u64,
    /// Each job's allocation from Slurm's accounting, as last read;
    /// `None`: never read.
    allocations: Option<Vec<Allocation>>,
    /// A Dask pool's workers' busy time (ms) by Dask worker name, as Dask
    /// last said; never less than before (a restarted Dask scheduler
    /// starts its sums again).
    dask_busy_ms: HashMap<String, u64>,
}

/// The most Dask workers whose busy time is kept (a name each).
const MAX_DASK_NAMES: usize = 1_000_000;

impl Costs {
    /// Costs counted from `began_ms`; an older journal said no beginning,
    /// and its first worker's registration will do.
    pub(crate) fn new(began_ms: u64, registry: &Registry) -> Self {
        let first = registry.first_registered_ms().unwrap_or(began_ms);
        Costs {
            began_ms: first.min(began_ms),
            allocations: None,
            dask_busy_ms: HashMap::new(),
        }
    }

    /// Takes Dask's busy seconds by worker name (bounded; a figure that
    /// is no number of seconds is left out).
    pub(crate) fn set_dask_busy(&mut self, seconds: &HashMap<String, f64>) {
        for (name, s) in seconds {
            if !s.is_finite() || *s < 0.0 {
                continue;
            }
            let ms = (s * 1000.0).min(u64::MAX as f64) as u64;
            let known = self.dask_busy_ms.len() < MAX_DASK_NAMES;
            match self.dask_busy_ms.get_mut(name) {
                Some(kept) => *kept = (*kept).max(ms),
                None if known => {
                    self.dask_busy_ms.insert(name.clone(), ms);
                }
                None => {}
            }
        }
    }
}

/// A worker's lifetime as its allocation, when Slurm's is not known.
fn lifetime(w: &WorkerInfo) -> Allocation {
    Allocation {
        group: w.offer.group.clone(),
        start_s: w.registered_at_ms / 1000,
        end_s: w.exited_at_ms.map(|ms| ms / 1000),
        tres: Tres {
            cpus: w.cores.into(),
            memory_bytes: w.memory_bytes,
            gpus: w.offer.gpu_count().into(),
            billing: None,
        },
        energy_joules: None,
    }
}

impl Registry {
    /// The cores of the live workers, and of those the cores running tasks
    /// hold (a Dask worker's: its running tasks, at most its cores): what
    /// the page's utilisation chart samples.
    pub(crate) fn cores_in_use(&self) -> (u64, u64) {
        let held = self.tasks.cores_held();
        let (mut cores, mut busy) = (0u64, 0u64);
        for e in self.workers.values().filter(|e| e.info.state.is_live()) {
            let c = u64::from(e.info.cores);
            cores += c;
            busy += match e.info.dask_name {
                Some(_) => u64::from(e.info.running_tasks).min(c),
                None => held.get(&e.info.id).copied().unwrap_or(0).min(c),
            };
        }
        (cores, busy)
    }

    /// The first registration this book holds (Unix ms).
    pub(crate) fn first_registered_ms(&self) -> Option<u64> {
        self.workers.values().map(|e| e.info.registered_at_ms).min()
    }

    /// The busy time and workers of each group, and each worker's
    /// lifetime as an allocation (for a report without Slurm's). A Dask
    /// worker's busy time is Dask's (`dask_busy_ms`, by its Dask name).
    fn usage_inputs(
        &self,
        now_ms: u64,
        lifetimes: bool,
        dask_busy_ms: &HashMap<String, u64>,
    ) -> Inputs {
        let mut workers: BTreeMap<Option<String>, u64> = BTreeMap::new();
        let mut allocations = Vec::new();
        let mut busy = self.tasks.busy_totals(now_ms);
        for e in self.workers.values() {
            let group = &e.info.offer.group;
            *workers.entry(group.clone()).or_default() += 1;
            if lifetimes {
                allocations.push(lifetime(&e.info));
            }
            let dask = e.info.dask_name.as_ref().and_then(|n| dask_busy_ms.get(n));
            if let Some(ms) = dask {
                let spent = busy.entry(group.clone()).or_default();
                spent.core_ms = spent.core_ms.saturating_add(*ms);
            }
        }
        Inputs {
            source: match (lifetimes, allocations.is_empty()) {
                (true, false) => ReportSource::WorkerLifetimes,
                _ => ReportSource::None,
            },
            allocations,
            busy,
            workers,
            cooldown_core_ms: self.tasks.cooldown_idle(),
        }
    }
}

impl Shared {
    /// Hands over the core-milliseconds of idle jobs `group`'s adaptive
    /// pool kept for its cooldown so far.
    pub(crate) fn set_cooldown_idle(&self, group: Option<String>, core_ms: u64) {
        self.registry().set_cooldown_idle(group, core_ms);
    }

    /// The idle time `group`'s adaptive pool kept for its cooldown so far
    /// (restored from the journal, or as the pool last said).
    pub(crate) fn cooldown_idle(&self, group: Option<&str>) -> u64 {
        let all = self.registry().tasks.cooldown_idle();
        all.get(&group.map(str::to_string)).copied().unwrap_or(0)
    }

    /// Hands over the pool's jobs' allocations, as Slurm's accounting has
    /// them now.
    pub(crate) fn set_allocations(&self, allocations: Vec<Allocation>) {
        self.costs.lock().allocations = Some(allocations);
    }

    /// What the pool cost and used, as of now.
    pub(crate) fn report(&self) -> Report {
        let now = unix_ms();
        if !self.config.accounting {
            return Report {
                at_ms: now,
                source: ReportSource::Off,
                ..Report::default()
            };
        }
        let (known, dask) = {
            let costs = self.costs.lock();
            (costs.allocations.clone(), costs.dask_busy_ms.clone())
        };
        let mut inputs = self.registry().usage_inputs(now, known.is_none(), &dask);
        if let Some(allocations) = known {
            inputs.allocations = allocations;
            inputs.source = ReportSource::SlurmAccounting;
        }
        accounting::report(&inputs, now)
    }
}
