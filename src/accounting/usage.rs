//! Allocated against busy: each job's allocation times what it was
//! allocated for, each task's run times what it asked for, summed per
//! group and in total.

use std::collections::BTreeMap;

pub use crate::protocol::{Report, ReportSource, Usage};
use crate::slurm::tres::Tres;
use crate::tasks::Spent;

/// One job's allocation: from Slurm's start to its end (or now).
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The pool's group the job belongs to (`None`: a pool without
    /// groups).
    pub group: Option<String>,
    /// When it started, in Unix seconds (Slurm's own time).
    pub start_s: u64,
    /// When it ended, in Unix seconds; `None` while it runs.
    pub end_s: Option<u64>,
    /// What Slurm allocated it.
    pub tres: Tres,
    /// The energy Slurm measured for it, in joules, where it measures it.
    pub energy_joules: Option<u64>,
}

impl Usage {
    fn add_allocation(&mut self, a: &Allocation, now_s: u64) {
        let end = a.end_s.unwrap_or(now_s).max(a.start_s);
        let secs = (end - a.start_s) as f64;
        self.jobs += 1;
        self.allocated_core_seconds += a.tres.cpus as f64 * secs;
        self.allocated_gpu_seconds += a.tres.gpus as f64 * secs;
        self.allocated_memory_gib_seconds +=
            a.tres.memory_bytes as f64 / (1u64 << 30) as f64 * secs;
        self.billing_units += a.tres.billing.unwrap_or(a.tres.cpus as f64) * secs / 3600.0;
        self.energy_joules = energy(self.jobs == 1, self.energy_joules, a.energy_joules);
    }

    fn add_busy(&mut self, b: &Spent) {
        self.busy_core_seconds += b.core_ms as f64 / 1000.0;
        self.busy_gpu_seconds += b.gpu_ms as f64 / 1000.0;
    }

    fn settle(&mut self) {
        self.idle_fraction = match self.allocated_core_seconds > 0.0 {
            true => (1.0 - self.busy_core_seconds / self.allocated_core_seconds).clamp(0.0, 1.0),
            false => 0.0,
        };
    }

    fn merge(&mut self, other: &Usage) {
        let jobs_before = self.jobs;
        self.jobs += other.jobs;
        self.workers += other.workers;
        self.allocated_core_seconds += other.allocated_core_seconds;
        self.allocated_gpu_seconds += other.allocated_gpu_seconds;
        self.allocated_memory_gib_seconds += other.allocated_memory_gib_seconds;
        self.busy_core_seconds += other.busy_core_seconds;
        self.busy_gpu_seconds += other.busy_gpu_seconds;
        self.billing_units += other.billing_units;
        self.cooldown_idle_core_seconds += other.cooldown_idle_core_seconds;
        self.energy_joules = energy(jobs_before == 0, self.energy_joules, other.energy_joules);
    }
}

/// The energy of a sum and one more part of it (`first`: the sum is
/// empty so far): one part not measured makes the sum not measured.
fn energy(first: bool, sum: Option<u64>, part: Option<u64>) -> Option<u64> {
    match (first, sum, part) {
        (true, _, e) => e,
        (false, Some(a), Some(b)) => Some(a.saturating_add(b)),
        _ => None,
    }
}

/// What a report is made of: each job's allocation, each group's busy
/// time (`tasks::BusyBook::totals`) and workers, by group (`None`: a pool
/// without groups).
#[derive(Debug, Default)]
pub struct Inputs {
    pub source: ReportSource,
    pub allocations: Vec<Allocation>,
    pub busy: BTreeMap<Option<String>, Spent>,
    pub workers: BTreeMap<Option<String>, u64>,
    /// Core-milliseconds of idle jobs each adaptive pool kept for its
    /// cooldown.
    pub cooldown_core_ms: BTreeMap<Option<String>, u64>,
}

/// The usage of `inputs`, by group and in total, at `now_ms` (jobs still
/// running count up to then).
pub fn report(inputs: &Inputs, now_ms: u64) -> Report {
    let mut by: BTreeMap<Option<String>, Usage> = BTreeMap::new();
    for a in &inputs.allocations {
        by.entry(a.group.clone())
            .or_default()
            .add_allocation(a, now_ms / 1000);
    }
    for (g, b) in &inputs.busy {
        by.entry(g.clone()).or_default().add_busy(b);
    }
    for (g, n) in &inputs.workers {
        by.entry(g.clone()).or_default().workers += n;
    }
    for (g, ms) in &inputs.cooldown_core_ms {
        by.entry(g.clone()).or_default().cooldown_idle_core_seconds += *ms as f64 / 1000.0;
    }
    let mut total = Usage::default();
    let mut groups = BTreeMap::new();
    for (group, mut usage) in by {
        usage.settle();
        total.merge(&usage);
        if let Some(name) = group {
            groups.insert(name, usage);
        }
    }
    total.settle();
    Report {
        at_ms: now_ms,
        source: inputs.source,
        total,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        group: Option<&str>,
        start_s: u64,
        end_s: Option<u64>,
        cpus: u64,
        billing: Option<f64>,
    ) -> Allocation {
        Allocation {
            group: group.map(String::from),
            start_s,
            end_s,
            tres: Tres {
                cpus,
                memory_bytes: 2 << 30,
                gpus: 0,
                billing,
            },
            energy_joules: Some(100),
        }
    }

    fn inputs(allocations: Vec<Allocation>, busy: &[(Option<&str>, u64)]) -> Inputs {
        Inputs {
            source: ReportSource::SlurmAccounting,
            allocations,
            busy: busy
                .iter()
                .map(|(g, core_ms)| {
                    let spent = Spent {
                        core_ms: *core_ms,
                        gpu_ms: 0,
                    };
                    (g.map(String::from), spent)
                })
                .collect(),
            workers: BTreeMap::new(),
            cooldown_core_ms: BTreeMap::new(),
        }
    }

    #[test]
    fn allocated_busy_idle_and_billing_per_group_and_in_total() {
        // Two 2-CPU jobs of 100 s in `cpu` (billing 3 by the weights), one
        // 1-CPU job still running for 50 s in `big` (no billing printed).
        let jobs = vec![
            job(Some("cpu"), 1_000, Some(1_100), 2, Some(3.0)),
            job(Some("cpu"), 1_000, Some(1_100), 2, Some(3.0)),
            job(Some("big"), 1_050, None, 1, None),
        ];
        let mut i = inputs(jobs, &[(Some("cpu"), 200_000), (Some("big"), 40_000)]);
        i.workers = [(Some("cpu".into()), 2), (Some("big".into()), 1)].into();
        i.cooldown_core_ms = [(Some("cpu".into()), 30_000)].into();
        let r = report(&i, 1_100_000);
        let cpu = &r.groups["cpu"];
        assert_eq!(cpu.allocated_core_seconds, 400.0);
        assert_eq!(cpu.busy_core_seconds, 200.0);
        assert_eq!(cpu.idle_fraction, 0.5);
        assert!((cpu.billing_units - 2.0 * 3.0 * 100.0 / 3600.0).abs() < 1e-12);
        assert_eq!(cpu.allocated_memory_gib_seconds, 400.0);
        assert_eq!(cpu.cooldown_idle_core_seconds, 30.0);
        assert_eq!(r.groups["big"].cooldown_idle_core_seconds, 0.0);
        let big = &r.groups["big"];
        assert_eq!(
            (big.allocated_core_seconds, big.busy_core_seconds),
            (50.0, 40.0)
        );
        assert!(
            (big.billing_units - 50.0 / 3600.0).abs() < 1e-12,
            "the CPUs without weights"
        );
        assert_eq!(r.total.allocated_core_seconds, 450.0);
        assert_eq!(r.total.busy_core_seconds, 240.0);
        assert_eq!(r.total.cooldown_idle_core_seconds, 30.0);
        assert!((r.total.idle_fraction - (1.0 - 240.0 / 450.0)).abs() < 1e-12);
        assert_eq!((r.total.jobs, r.total.workers), (3, 3));
        assert_eq!(r.total.energy_joules, Some(300));
        assert_eq!(
            r.total.summary(),
            "3 workers, 0.12 core-h allocated, 0.07 busy (53 %), 0.18 billing units"
        );
        assert_eq!(
            (r.at_ms, r.source),
            (1_100_000, ReportSource::SlurmAccounting)
        );
    }

    #[test]
    fn a_pool_without_groups_has_a_total_only() {
        let i = inputs(vec![job(None, 0, Some(10), 4, None)], &[(None, 20_000)]);
        let r = report(&i, 10_000);
        assert!(r.groups.is_empty());
        assert_eq!(r.total.allocated_core_seconds, 40.0);
        assert_eq!(r.total.idle_fraction, 0.5);
    }

    #[test]
    fn energy_is_not_measured_once_one_job_was_not_and_nothing_is_never_negative() {
        let mut unmeasured = job(Some("g"), 10, Some(20), 1, None);
        unmeasured.energy_joules = None;
        let both = vec![job(Some("g"), 10, Some(20), 1, None), unmeasured];
        let r = report(&inputs(both, &[]), 30_000);
        assert_eq!(r.total.energy_joules, None);
        assert_eq!(r.groups["g"].energy_joules, None);
        // Clocks apart (an end before its start, busy beyond the
        // allocation): no negative time, no negative idle.
        let i = inputs(
            vec![job(Some("g"), 50, Some(40), 1, None)],
            &[(Some("g"), 4_000), (Some("h"), 5_000)],
        );
        let r = report(&i, 60_000);
        assert_eq!(r.groups["g"].allocated_core_seconds, 0.0);
        assert_eq!(r.groups["g"].idle_fraction, 0.0);
        assert_eq!(r.groups["h"].busy_core_seconds, 5.0);
        assert_eq!(r.total.idle_fraction, 0.0);
        let empty = report(&Inputs::default(), 0);
        assert_eq!((empty.total, empty.groups.len()), (Usage::default(), 0));
    }
}
