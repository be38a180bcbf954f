//! Busy time: what the tasks used of the pool, each run's cores and GPUs
//! for as long as it ran, summed per group (what a pool cost is set
//! against it in `accounting/`).
//!
//! A run starts when it is handed to a worker (the time the journal
//! records with the assignment), and ends by the worker's report (the
//! run's own duration, measured where it ran), or with its worker (lost,
//! left, stopped by Slurm: the time that was recorded). A run a restarted
//! scheduler handed out but no worker held never ran and counts nothing.
//! Runs under way count up to the moment asked. The book is kept in the
//! journal's snapshot, and the rest is replayed with the times recorded,
//! so it survives a restart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::{TaskId, WorkerId};

/// A run under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OpenRun {
    attempt: u32,
    worker: WorkerId,
    /// Its worker's group (`""`: a pool without groups).
    group: String,
    cores: u32,
    gpus: u32,
    start_ms: u64,
}

/// Core- and GPU-milliseconds of the runs that ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    pub core_ms: u64,
    pub gpu_ms: u64,
}

impl Spent {
    fn add(&mut self, cores: u32, gpus: u32, ms: u64) {
        self.core_ms = self.core_ms.saturating_add(ms.saturating_mul(cores.into()));
        self.gpu_ms = self.gpu_ms.saturating_add(ms.saturating_mul(gpus.into()));
    }
}

/// The busy time of every group, and the runs still under way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BusyImage", into = "BusyImage")]
pub struct BusyBook {
    /// By task: a task has one run at a time.
    open: BTreeMap<TaskId, OpenRun>,
    /// By group (`""`: a pool without groups).
    spent: BTreeMap<String, Spent>,
    /// Core-milliseconds of idle jobs each adaptive pool (by group, `""`
    /// as above) kept only for its cooldown after going up, as the pool
    /// last said: kept here so that a restart from the journal goes on
    /// from it.
    cooldown: BTreeMap<String, u64>,
    /// Not kept (`accounting = false`): no run is recorded.
    off: bool,
}

/// The book as the journal's snapshot keeps it: the runs as a list (a
/// map by number would have string keys, which the snapshot's record
/// cannot read back as numbers).
#[derive(Serialize, Deserialize)]
struct BusyImage {
    #[serde(default)]
    open: Vec<(TaskId, OpenRun)>,
    #[serde(default)]
    spent: BTreeMap<String, Spent>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cooldown: BTreeMap<String, u64>,
}

impl From<BusyImage> for BusyBook {
    fn from(i: BusyImage) -> Self {
        BusyBook {
            open: i.open.into_iter().collect(),
            spent: i.spent,
            cooldown: i.cooldown,
            off: false,
        }
    }
}

impl From<BusyBook> for BusyImage {
    fn from(b: BusyBook) -> Self {
        BusyImage {
            open: b.open.into_iter().collect(),
            spent: b.spent,
            cooldown: b.cooldown,
        }
    }
}

impl super::Engine {
    /// The cores each worker's running tasks hold.
    pub fn cores_held(&self) -> std::collections::HashMap<WorkerId, u64> {
        self.busy.iter().map(|(w, h)| (*w, h.ask.cores)).collect()
    }

    /// Each group's busy time up to `now_ms`.
    pub fn busy_totals(&self, now_ms: u64) -> BTreeMap<Option<String>, Spent> {
        self.busy_time.totals(now_ms)
    }

    /// Sets the core-milliseconds `group`'s adaptive pool kept idle for
    /// its cooldown so far; whether that changed what the book holds.
    pub fn set_cooldown_idle(&mut self, group: Option<&str>, core_ms: u64) -> bool {
        let book = &mut self.busy_time;
        if book.off {
            return false;
        }
        let group = group.unwrap_or_default().to_string();
        book.cooldown.insert(group, core_ms) != Some(core_ms)
    }

    /// Each group's cooldown idle time (core-ms), `None` for a pool
    /// without groups.
    pub fn cooldown_idle(&self) -> BTreeMap<Option<String>, u64> {
        (self.busy_time.cooldown.iter())
            .map(|(g, ms)| ((!g.is_empty()).then(|| g.clone()), *ms))
            .collect()
    }
}

impl BusyBook {
    /// Keeps the book or not (`accounting = false`: nothing recorded, and
    /// what a journal held is dropped).
    pub(super) fn keep(&mut self, on: bool) {
        self.off = !on;
        if self.off {
            self.open.clear();
            self.spent.clear();
            self.cooldown.clear();
        }
    }

    /// This book, with what `image` (a journal's) holds, kept or not as
    /// this one is.
    pub(super) fn restored(&self, image: BusyBook) -> BusyBook {
        let mut book = image;
        book.keep(!self.off);
        book
    }

    /// Run `attempt` of `task` was handed to `worker` at `at_ms`.
    pub(super) fn started(
        &mut self,
        task: TaskId,
        attempt: u32,
        worker: WorkerId,
        group: Option<&str>,
        (cores, gpus): (u32, u32),
        at_ms: u64,
    ) {
        if self.off {
            return;
        }
        let run = OpenRun {
            attempt,
            worker,
            group: group.unwrap_or_default().to_string(),
            cores,
            gpus,
            start_ms: at_ms,
        };
        self.open.insert(task, run);
    }

    /// The worker reported the run ended after `ran_ms`.
    pub(super) fn reported(&mut self, task: TaskId, attempt: u32, worker: WorkerId, ran_ms: u64) {
        if let Some(run) = self.take(task, |r| r.attempt == attempt && r.worker == worker) {
            self.spend(&run, ran_ms);
        }
    }

    /// `worker` is gone at `at_ms`: its runs ended then.
    pub(super) fn worker_ended(&mut self, worker: WorkerId, at_ms: u64) {
        let ended: Vec<TaskId> = self
            .open
            .iter()
            .filter(|(_, r)| r.worker == worker)
            .map(|(t, _)| *t)
            .collect();
        for task in ended {
            if let Some(run) = self.open.remove(&task) {
                self.spend(&run, at_ms.saturating_sub(run.start_ms));
            }
        }
    }

    /// The run of `task` on `worker` never ran (a restarted scheduler's
    /// answer that did not reach it).
    pub(super) fn never_ran(&mut self, task: TaskId, worker: WorkerId) {
        self.take(task, |r| r.worker == worker);
    }

    fn take(&mut self, task: TaskId, matches: impl Fn(&OpenRun) -> bool) -> Option<OpenRun> {
        match self.open.get(&task) {
            Some(r) if matches(r) => self.open.remove(&task),
            _ => None,
        }
    }

    fn spend(&mut self, run: &OpenRun, ms: u64) {
        self.spent
            .entry(run.group.clone())
            .or_default()
            .add(run.cores, run.gpus, ms);
    }

    /// Each group's busy time up to `now_ms` (runs under way included),
    /// `None` for a pool without groups.
    pub fn totals(&self, now_ms: u64) -> BTreeMap<Option<String>, Spent> {
        let mut all = self.spent.clone();
        for run in self.open.values() {
            all.entry(run.group.clone()).or_default().add(
                run.cores,
                run.gpus,
                now_ms.saturating_sub(run.start_ms),
            );
        }
        all.into_iter()
            .map(|(g, s)| ((!g.is_empty()).then_some(g), s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: WorkerId = WorkerId(1);
    const V: WorkerId = WorkerId(2);

    #[test]
    fn reported_runs_count_their_own_time_and_runs_under_way_count_up_to_now() {
        let mut b = BusyBook::default();
        b.started(TaskId(1), 1, W, None, (2, 0), 1_000);
        b.started(TaskId(2), 1, V, Some("gpu"), (1, 1), 1_000);
        b.reported(TaskId(1), 1, W, 3_000);
        // A stale report (another attempt, another worker) counts nothing.
        b.reported(TaskId(2), 2, V, 50_000);
        b.reported(TaskId(2), 1, W, 50_000);
        let t = b.totals(5_000);
        assert_eq!(
            t[&None],
            Spent {
                core_ms: 6_000,
                gpu_ms: 0
            }
        );
        assert_eq!(
            t[&Some("gpu".into())],
            Spent {
                core_ms: 4_000,
                gpu_ms: 4_000
            }
        );
    }

    #[test]
    fn runs_end_with_their_worker_and_a_run_never_held_counts_nothing() {
        let mut b = BusyBook::default();
        b.started(TaskId(1), 1, W, None, (4, 0), 10_000);
        b.started(TaskId(2), 1, W, None, (1, 0), 12_000);
        b.started(TaskId(3), 1, V, None, (8, 0), 10_000);
        b.worker_ended(W, 13_000);
        b.never_ran(TaskId(3), V);
        // The worker's clock behind the start: nothing negative.
        b.started(TaskId(4), 1, V, None, (1, 0), 20_000);
        b.worker_ended(V, 19_000);
        assert_eq!(b.totals(100_000)[&None].core_ms, 4 * 3_000 + 1_000);
        // The book survives the journal's snapshot as it is.
        b.cooldown.insert("gpu".into(), 7_000);
        let again: BusyBook = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn a_book_not_kept_records_nothing_and_drops_what_a_journal_held() {
        let mut kept = BusyBook::default();
        kept.started(TaskId(1), 1, W, None, (4, 0), 10_000);
        kept.reported(TaskId(1), 1, W, 1_000);
        kept.cooldown.insert(String::new(), 5_000);
        let mut off = BusyBook::default();
        off.keep(false);
        off.started(TaskId(2), 1, W, None, (4, 0), 10_000);
        assert!(off.totals(100_000).is_empty());
        let restored = off.restored(kept.clone());
        assert!(restored.totals(100_000).is_empty() && restored.cooldown.is_empty());
        // A kept book takes the journal's as it is.
        let on = BusyBook::default().restored(kept.clone());
        assert_eq!(on.totals(100_000)[&None].core_ms, 4_000);
        assert_eq!(on.cooldown[""], 5_000);
    }
}
