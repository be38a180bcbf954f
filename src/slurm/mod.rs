//! Talking to Slurm: one trait, `Slurm`, for everything drover asks of it,
//! so the logic above it runs the same on the command-line tools
//! (`SlurmCli`), on slurmrestd (`SlurmRest`), or on the fake that unit
//! tests use. `connect` picks one from the settings. Slurm's failures are
//! classified here (`SlurmError`), nowhere else.

pub mod allocations;
mod cli;
mod config;
mod connect;
pub mod dialect;
mod error;
#[cfg(test)]
pub mod fake;
pub mod hostlist;
mod job;
pub(crate) mod json_shapes;
#[cfg(test)]
mod releases;
pub mod rest;
mod sacct;
mod site;
mod squeue;
mod squeue_fields;
pub mod tres;

pub use cli::SlurmCli;
pub use config::SchedulerConfig;
pub use connect::{backend, connect};
pub use error::{Refusal, SlurmError};
pub use job::{expand_tasks, is_launch_failure_hold, JobId, JobInfo, JobRef, JobState};
pub use rest::SlurmRest;
pub use sacct::JobFate;
pub use site::{Association, PartitionInfo, QosLimits, SiteInfo, UserLimits};

use std::sync::Arc;
use std::time::Duration;

/// How a job is submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Submit held (`--hold`): the job waits until released.
    pub hold: bool,
    /// Submit as a job array of this many tasks (`--array=0-(n-1)`), each
    /// its own job with its own id and log.
    pub array: Option<u32>,
    /// Nodes to keep the job off (`--exclude`), such as nodes that just
    /// lost their workers.
    pub exclude: Vec<String>,
    /// Log file patterns (`--output`, `--error`) replacing the script's,
    /// such as Slurm's own `%A_%a` naming for array tasks.
    pub logs: Option<(String, String)>,
    /// Environment variables the job gets on top of the submitter's
    /// (`--export=ALL,NAME=VALUE`), such as its index in the pool.
    pub env: Vec<(String, String)>,
}

/// A compute node and the address Slurm reaches it at (`NodeAddr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The node's name.
    pub name: String,
    /// Its address: an IP, or a name to resolve.
    pub address: String,
}

/// Slurm's verdict on a script it was asked to check, not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestVerdict {
    /// Whether Slurm would accept the job.
    pub accepted: bool,
    /// Slurm's own words, verbatim.
    pub message: String,
}

/// Everything drover asks of Slurm.
#[async_trait::async_trait]
pub trait Slurm: Send + Sync {
    /// Submits `script` as one batch job (or one array).
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError>;

    /// Asks Slurm whether it would accept `script`, submitting nothing.
    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError>;

    /// Cancels every job or array task in `jobs` with one call.
    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError>;

    /// Cancels every job named `name`, listed or not: how a pool that
    /// cannot trust its books (its driver is gone) removes its jobs.
    async fn cancel_named(&self, name: &str) -> Result<(), SlurmError>;

    /// Every job Slurm knows named `name` (every job at all with `None`),
    /// recently ended ones included, with one call; array tasks not yet
    /// started come one entry per task.
    async fn jobs(&self, name: Option<&str>) -> Result<Vec<JobInfo>, SlurmError>;

    /// Every job named one of `names`, as `jobs` lists them: one call for
    /// a pool's groups where the backend can (by default one per name).
    async fn jobs_named(&self, names: &[String]) -> Result<Vec<JobInfo>, SlurmError> {
        jobs_one_name_at_a_time(self, names).await
    }

    /// Time left before `job` reaches its time limit; `None` when it has
    /// none or Slurm does not say.
    async fn time_left(&self, job: JobRef) -> Result<Option<Duration>, SlurmError>;

    /// The nodes of `partition` (the default partition when `None`) and
    /// their addresses: what a scheduler must be reachable from.
    async fn node_addresses(&self, partition: Option<&str>)
        -> Result<Vec<NodeAddress>, SlurmError>;

    /// What the cluster says of its scheduler (`scontrol show config`):
    /// how a pool sizes and paces its submissions.
    async fn scheduler_config(&self) -> Result<SchedulerConfig, SlurmError>;

    /// Slurm's version and accounting, for `drover doctor`.
    async fn site(&self) -> Result<SiteInfo, SlurmError> {
        Ok(SiteInfo::default())
    }

    /// Every partition, with its limits.
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, SlurmError> {
        Ok(Vec::new())
    }

    /// What accounting says this user may do (`None`: it does not say).
    async fn user_limits(&self) -> Result<Option<UserLimits>, SlurmError> {
        Ok(None)
    }

    /// How `jobs` ended, from accounting, in as few calls as it takes;
    /// `None` when this Slurm keeps no accounting or this backend cannot
    /// read it (then a job gone from the listing ended, state unknown).
    async fn fates(&self, _jobs: &[JobRef]) -> Result<Option<Vec<JobFate>>, SlurmError> {
        Ok(None)
    }

    /// What Slurm allocated the jobs named `names` (a pool's groups) in
    /// the last `seconds`, and for how long, from accounting, in one call;
    /// `None` when this Slurm keeps no accounting or this backend cannot
    /// read it.
    async fn allocations(
        &self,
        _names: &[String],
        _seconds: u64,
    ) -> Result<Option<Vec<allocations::JobAllocation>>, SlurmError> {
        Ok(None)
    }

    /// Releases held `jobs` with one call (`scontrol release`); `false`
    /// when this backend cannot, so the caller does something else.
    async fn release(&self, _jobs: &[JobRef]) -> Result<bool, SlurmError> {
        Ok(false)
    }

    /// How many requests this backend has made of Slurm, for the status.
    fn calls(&self) -> u64;

    /// The environment a drover process started from this one (the
    /// orphan watcher) needs to reach Slurm the same way.
    fn child_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// How this backend reaches Slurm, for messages and the status.
    fn describe(&self) -> String {
        "Slurm's commands".into()
    }

    /// Whether `test_submit` leaves no trace (`sbatch --test-only`), so a
    /// pool may check its jobs with it before submitting any.
    fn tests_without_submitting(&self) -> bool {
        true
    }

    /// What drover does differently on `release` through this backend, in
    /// words (`dialect`); call after a first request, so a REST backend
    /// has negotiated its version.
    fn differences(&self, release: dialect::Release) -> Vec<&'static str> {
        dialect::commands(release)
    }
}

/// `Slurm::jobs_named` as one `jobs` call per name: the default, and what
/// a backend falls back to for names it cannot list together.
pub async fn jobs_one_name_at_a_time<S: Slurm + ?Sized>(
    slurm: &S,
    names: &[String],
) -> Result<Vec<JobInfo>, SlurmError> {
    let mut all = Vec::new();
    for name in names {
        all.extend(slurm.jobs(Some(name)).await?);
    }
    Ok(all)
}

/// A shared backend is a backend: `connect`'s answer can be handed to
/// anything that takes `impl Slurm`.
#[async_trait::async_trait]
impl<S: Slurm + ?Sized> Slurm for Arc<S> {
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError> {
        (**self).submit(script, options).await
    }
    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError> {
        (**self).test_submit(script).await
    }
    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError> {
        (**self).cancel(jobs).await
    }
    async fn cancel_named(&self, name: &str) -> Result<(), SlurmError> {
        (**self).cancel_named(name).await
    }
    async fn jobs(&self, name: Option<&str>) -> Result<Vec<JobInfo>, SlurmError> {
        (**self).jobs(name).await
    }
    async fn jobs_named(&self, names: &[String]) -> Result<Vec<JobInfo>, SlurmError> {
        (**self).jobs_named(names).await
    }
    async fn time_left(&self, job: JobRef) -> Result<Option<Duration>, SlurmError> {
        (**self).time_left(job).await
    }
    async fn node_addresses(
        &self,
        partition: Option<&str>,
    ) -> Result<Vec<NodeAddress>, SlurmError> {
        (**self).node_addresses(partition).await
    }
    async fn scheduler_config(&self) -> Result<SchedulerConfig, SlurmError> {
        (**self).scheduler_config().await
    }
    async fn site(&self) -> Result<SiteInfo, SlurmError> {
        (**self).site().await
    }
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, SlurmError> {
        (**self).partitions().await
    }
    async fn user_limits(&self) -> Result<Option<UserLimits>, SlurmError> {
        (**self).user_limits().await
    }
    async fn fates(&self, jobs: &[JobRef]) -> Result<Option<Vec<JobFate>>, SlurmError> {
        (**self).fates(jobs).await
    }
    async fn allocations(
        &self,
        names: &[String],
        seconds: u64,
    ) -> Result<Option<Vec<allocations::JobAllocation>>, SlurmError> {
        (**self).allocations(names, seconds).await
    }
    async fn release(&self, jobs: &[JobRef]) -> Result<bool, SlurmError> {
        (**self).release(jobs).await
    }
    fn calls(&self) -> u64 {
        (**self).calls()
    }
    fn child_env(&self) -> Vec<(String, String)> {
        (**self).child_env()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn tests_without_submitting(&self) -> bool {
        (**self).tests_without_submitting()
    }
    fn differences(&self, release: dialect::Release) -> Vec<&'static str> {
        (**self).differences(release)
    }
}
