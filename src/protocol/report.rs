//! What a pool cost and what it used, as the scheduler reports it
//! (`GET /v1/report`): allocated core-, GPU- and memory-seconds, busy
//! core- and GPU-seconds, the idle fraction, billing units and energy, in
//! total and per group. The arithmetic is `accounting/`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the allocated figures came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// Slurm's accounting (`sacct`): each job's own start, end and TRES.
    SlurmAccounting,
    /// No accounting to read (none kept, or slurmrestd): each worker from
    /// its registration to its exit, with the cores and memory it
    /// offered; billing is then its CPUs, energy not measured.
    WorkerLifetimes,
    /// Nothing yet: no allocation has been read.
    #[default]
    None,
    /// The pool keeps no accounting (`accounting = false`).
    Off,
}

impl std::fmt::Display for ReportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReportSource::SlurmAccounting => "Slurm's accounting (sacct)",
            ReportSource::WorkerLifetimes => {
                "the workers' lifetimes (no accounting to read: billing is their CPUs)"
            }
            ReportSource::None => "nothing yet",
            ReportSource::Off => "nothing: accounting is off (accounting = false)",
        })
    }
}

/// What a pool (or one of its groups) cost and used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Jobs counted.
    pub jobs: u64,
    /// Workers that registered.
    #[serde(default)]
    pub workers: u64,
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
    /// Core-seconds of idle jobs an adaptive pool kept only because it had
    /// gone up within its cooldown (`adapt-cooldown`): a move down would
    /// have ended them.
    #[serde(default)]
    pub cooldown_idle_core_seconds: f64,
}

/// A pool's usage in total and by group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When it was made (Unix milliseconds): jobs and runs under way count
    /// up to then.
    #[serde(default)]
    pub at_ms: u64,
    /// Where the allocated figures came from.
    #[serde(default)]
    pub source: ReportSource,
    pub total: Usage,
    /// A pool with groups: each group's (a pool without groups has none).
    #[serde(default)]
    pub groups: BTreeMap<String, Usage>,
}

impl Report {
    /// One line for the pool's close: its total's summary, or that
    /// accounting is off.
    pub fn summary(&self) -> String {
        match self.source {
            ReportSource::Off => "accounting is off".to_string(),
            _ => self.total.summary(),
        }
    }
}

impl Usage {
    /// One line for the end of a pool: `32 workers, 0.9 core-h allocated,
    /// 0.61 busy (68 %), 1.2 billing units`.
    pub fn summary(&self) -> String {
        let busy = 100.0 * (1.0 - self.idle_fraction);
        format!(
            "{} workers, {:.2} core-h allocated, {:.2} busy ({busy:.0} %), {:.2} billing units",
            self.workers,
            self.allocated_core_seconds / 3600.0,
            self.busy_core_seconds / 3600.0,
            self.billing_units
        )
    }
}
