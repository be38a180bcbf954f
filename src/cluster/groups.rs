//! A cluster's groups, each sized on its own: what `scale_group` and
//! `adapt_group` do, and finding a group by name.

use std::time::Duration;

use super::pool::Pool;
use super::{ClusterError, SlurmCluster};
use crate::journal::PoolMode;

impl SlurmCluster {
    /// The names of the cluster's groups, as declared (empty without groups).
    pub fn group_names(&self) -> Vec<String> {
        self.pools()
            .iter()
            .filter_map(|p| p.group.clone())
            .collect()
    }

    /// Asks group `name` for `n` workers; it stops adapting.
    pub fn scale_group(&self, name: &str, n: usize) -> Result<(), ClusterError> {
        let pool = self.group(name)?;
        let jobs = pool.per_job().jobs_for_workers(n);
        tracing::info!(group = name, workers = n, jobs, "scaling");
        pool.set_mode(PoolMode::Fixed { jobs });
        Ok(())
    }

    /// Sizes group `name` to the work it can serve, between `min` and
    /// `max` workers (see `tasks/demand.rs` for which work that is).
    pub fn adapt_group(&self, name: &str, min: usize, max: usize) -> Result<(), ClusterError> {
        let idle = self.pools()[0].options.idle_timeout;
        self.adapt_group_with(name, min, max, idle)
    }

    /// Like `adapt_group`, retiring workers idle for `idle_timeout`.
    pub fn adapt_group_with(
        &self,
        name: &str,
        min: usize,
        max: usize,
        idle_timeout: Duration,
    ) -> Result<(), ClusterError> {
        let pool = self.group(name)?;
        if pool.dask.is_some() {
            return Err(ClusterError::Unsupported(format!(
                "group {name}: a Dask pool's groups take fixed sizes (scale); Dask's adaptive target is for the whole pool"
            )));
        }
        let (min_jobs, max_jobs) = pool.per_job().job_range(min, max);
        tracing::info!(group = name, min, max, "adapting");
        pool.set_mode(PoolMode::Adapt {
            min_jobs,
            max_jobs,
            idle_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
        });
        Ok(())
    }

    fn group(&self, name: &str) -> Result<&Pool, ClusterError> {
        self.pools()
            .iter()
            .find(|p| p.group.as_deref() == Some(name))
            .map(|p| &**p)
            .ok_or_else(|| ClusterError::NoSuchGroup {
                asked: name.to_string(),
                groups: match self.group_names() {
                    g if g.is_empty() => "none: this cluster has no groups".into(),
                    g => g.join(", "),
                },
            })
    }
}
