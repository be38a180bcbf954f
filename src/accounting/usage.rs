//! Allocated against busy: each job's allocation times what it was
//! allocated for, each task's run times what it asked for, summed per
//! group and in total.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::slurm::tres::Tres;

/// One job's allocation: from Slurm's start to its end (or now).
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The pool's group the job belongs to (`default` in a pool without
    /// groups).
    pub group: String,
    /// When it started, in Unix seconds (Slurm's own time).
    pub start_s: u64,
    /// When it ended, in Unix seconds; `None` while it runs.
    pub end_s: Option<u64>,
    /// What Slurm allocated it.
    pub tres: Tres,
    /// The energy Slurm measured for it, in joules, where it measures it.
    pub energy_joules: Option<u64>,
}

/// One task's run on a worker of `group`: its cores and GPUs for its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    pub group: String,
    pub cores: u32,
    pub gpus: u32,
    /// Its start and end, in Unix milliseconds; no end while it runs.
    pub start_ms: u64,
    pub end_ms: Option<u64>,
}

/// What a pool (or one of its groups) cost and used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Jobs counted.
    pub jobs: u64,
    pub allocated_core_seconds: f64,
    pub allocated_gpu_seconds: f64,
    /// Memory allocated, in GiB-seconds.
    pub allocated_memory_gib_seconds: f64,
    pub busy_core_seconds: f64,
    pub busy_gpu_seconds: f64,
    /// The allocated core-seconds no task used (0 when none was allocated).
    pub idle_fraction: f64,
    /// Slurm's billing TRES times hours (the partition's
    /// `TRESBillingWeights`; the CPU count where none are set).
    pub billing_units: f64,
    /// Energy in joules, where Slurm measured it for every job counted;
    /// `None`: not measured.
    pub energy_joules: Option<u64>,
}

/// A pool's usage in total and by group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub total: Usage,
    pub groups: BTreeMap<String, Usage>,
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
        // One job not measured makes the sum not measured.
        self.energy_joules = match (self.jobs, self.energy_joules, a.energy_joules) {
            (1, _, e) => e,
            (_, Some(sum), Some(e)) => Some(sum.saturating_add(e)),
            _ => None,
        };
    }

    fn add_busy(&mut self, b: &Busy, now_ms: u64) {
        let end = b.end_ms.unwrap_or(now_ms).max(b.start_ms);
        let secs = (end - b.start_ms) as f64 / 1000.0;
        self.busy_core_seconds += b.cores as f64 * secs;
        self.busy_gpu_seconds += b.gpus as f64 * secs;
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
        self.allocated_core_seconds += other.allocated_core_seconds;
        self.allocated_gpu_seconds += other.allocated_gpu_seconds;
        self.allocated_memory_gib_seconds += other.allocated_memory_gib_seconds;
        self.busy_core_seconds += other.busy_core_seconds;
        self.busy_gpu_seconds += other.busy_gpu_seconds;
        self.billing_units += other.billing_units;
        self.energy_joules = match (jobs_before, self.energy_joules, other.energy_joules) {
            (0, _, e) => e,
            (_, Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
    }

    /// One line for the end of a pool: `32 workers, 0.9 core-h allocated,
    /// 0.61 busy (68 %), 1.2 billing units`.
    pub fn summary(&self, workers: usize) -> String {
        let busy = 100.0 * (1.0 - self.idle_fraction);
        format!(
            "{workers} workers, {:.2} core-h allocated, {:.2} busy ({busy:.0} %), {:.2} billing units",
            self.allocated_core_seconds / 3600.0,
            self.busy_core_seconds / 3600.0,
            self.billing_units
        )
    }
}

/// The usage of `allocations` and `busy`, by group and in total, at
/// `now_ms` (jobs and tasks still running count up to then).
pub fn report(allocations: &[Allocation], busy: &[Busy], now_ms: u64) -> Report {
    let mut groups: BTreeMap<String, Usage> = BTreeMap::new();
    for a in allocations {
        groups
            .entry(a.group.clone())
            .or_default()
            .add_allocation(a, now_ms / 1000);
    }
    for b in busy {
        groups
            .entry(b.group.clone())
            .or_default()
            .add_busy(b, now_ms);
    }
    let mut total = Usage::default();
    for usage in groups.values_mut() {
        usage.settle();
        total.merge(usage);
    }
    total.settle();
    Report { total, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        group: &str,
        start_s: u64,
        end_s: Option<u64>,
        cpus: u64,
        billing: Option<f64>,
    ) -> Allocation {
        Allocation {
            group: group.into(),
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

    fn run(group: &str, cores: u32, start_ms: u64, end_ms: Option<u64>) -> Busy {
        Busy {
            group: group.into(),
            cores,
            gpus: 0,
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn allocated_busy_idle_and_billing_per_group_and_in_total() {
        // Two 2-CPU jobs of 100 s in `cpu` (billing 3 by the weights), one
        // 1-CPU job still running for 50 s in `big` (no billing printed).
        let jobs = [
            job("cpu", 1_000, Some(1_100), 2, Some(3.0)),
            job("cpu", 1_000, Some(1_100), 2, Some(3.0)),
            job("big", 1_050, None, 1, None),
        ];
        let busy = [
            run("cpu", 1, 1_000_000, Some(1_100_000)),
            run("cpu", 2, 1_000_000, Some(1_050_000)),
            run("big", 1, 1_060_000, None),
        ];
        let r = report(&jobs, &busy, 1_100_000);
        let cpu = &r.groups["cpu"];
        assert_eq!(cpu.allocated_core_seconds, 400.0);
        assert_eq!(cpu.busy_core_seconds, 200.0);
        assert_eq!(cpu.idle_fraction, 0.5);
        assert!((cpu.billing_units - 2.0 * 3.0 * 100.0 / 3600.0).abs() < 1e-12);
        assert_eq!(cpu.allocated_memory_gib_seconds, 400.0);
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
        assert!((r.total.idle_fraction - (1.0 - 240.0 / 450.0)).abs() < 1e-12);
        assert_eq!(r.total.jobs, 3);
        assert_eq!(r.total.energy_joules, Some(300));
        assert_eq!(
            r.total.summary(3),
            "3 workers, 0.12 core-h allocated, 0.07 busy (53 %), 0.18 billing units"
        );
    }

    #[test]
    fn energy_is_not_measured_once_one_job_was_not_and_nothing_is_never_negative() {
        let mut unmeasured = job("g", 10, Some(20), 1, None);
        unmeasured.energy_joules = None;
        let r = report(&[job("g", 10, Some(20), 1, None), unmeasured], &[], 30_000);
        assert_eq!(r.total.energy_joules, None);
        assert_eq!(r.groups["g"].energy_joules, None);
        // Clocks apart (an end before its start, busy beyond the
        // allocation): no negative time, no negative idle.
        let r = report(
            &[job("g", 50, Some(40), 1, None)],
            &[run("g", 4, 9_000, Some(8_000)), run("h", 1, 0, Some(5_000))],
            60_000,
        );
        assert_eq!(r.groups["g"].allocated_core_seconds, 0.0);
        assert_eq!(r.groups["g"].idle_fraction, 0.0);
        assert_eq!(r.groups["h"].busy_core_seconds, 5.0);
        assert_eq!(r.total.idle_fraction, 0.0);
        assert_eq!(report(&[], &[], 0), Report::default());
    }
}
