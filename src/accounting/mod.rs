//! What a pool cost and what it used: Slurm's allocation of each of its
//! jobs (from squeue while they run, sacct once they have left) against
//! the busy time of the tasks that ran on them, per group and in total.
//! Pure arithmetic over what the pool already knows; the pool gathers the
//! inputs, the report and the page show the result.

mod usage;

pub use usage::{report, Allocation, Inputs, Report, ReportSource, Usage};
