//! A pool with groups from the command line: each `[group.NAME]` table's
//! jobs (the `[job]` settings and flags, with the group's own on top) and
//! each group's size.

use drover::cluster::{Group, SlurmCluster};
use drover::config::{GroupOptions, JobOptions};

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
        match (g.adapt, g.workers) {
            (Some(r), _) => {
                cluster.adapt_group(&g.name, r.min, r.max)?;
                wanted = wanted.saturating_add(r.min);
            }
            (None, workers) => {
                let n = workers.unwrap_or(1);
                cluster.scale_group(&g.name, n)?;
                wanted = wanted.saturating_add(n);
            }
        }
    }
    Ok(wanted)
}
