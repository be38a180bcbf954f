//! A pool with groups from the command line: each `[group.NAME]` table's
//! jobs (the `[job]` settings and flags, with the group's own on top) and
//! each group's size.

use drover::cluster::{Group, SlurmCluster};
use drover::config::{AdaptRange, GroupOptions, JobOptions};

use super::error::CliError;

/// Each group's job spec: `base` (files and flags) with the group's keys
/// on top, checked; an error names the group.
pub fn specs(base: &JobOptions, groups: &[GroupOptions]) -> Result<Vec<Group>, CliError> {
    groups
        .iter()
        .map(|g| {
            let spec = base
                .clone()
                .overlay(g.job.clone())
                .build()
                .map_err(|e| CliError::usage(format!("[group.{}]: {e}", g.name)))?;
            Ok(Group {
                name: g.name.clone(),
                spec,
            })
        })
        .collect()
}

/// Sizes every group as its table says (1 worker when it says nothing);
/// returns the workers to wait for: the fixed sizes and adaptive minimums.
pub fn size(cluster: &SlurmCluster, groups: &[GroupOptions]) -> Result<usize, CliError> {
    let mut wanted = 0usize;
    for g in groups {
        let n = apply_size(cluster, Some(&g.name), g.adapt, g.workers)?;
        wanted = wanted.saturating_add(n);
    }
    Ok(wanted)
}

/// Sizes the pool, or its group `group`, as the settings say: adapting
/// within `adapt`, else `workers` (1 when not given). Returns the workers
/// to wait for: the fixed size, or the adaptive minimum.
pub fn apply_size(
    cluster: &SlurmCluster,
    group: Option<&str>,
    adapt: Option<AdaptRange>,
    workers: Option<usize>,
) -> Result<usize, CliError> {
    match (adapt, group) {
        (Some(r), Some(g)) => cluster.adapt_group(g, r.min, r.max)?,
        (Some(r), None) => cluster.adapt(r.min, r.max),
        (None, Some(g)) => cluster.scale_group(g, workers.unwrap_or(1))?,
        (None, None) => cluster.scale(workers.unwrap_or(1)),
    }
    Ok(adapt.map_or(workers.unwrap_or(1), |r| r.min))
}
