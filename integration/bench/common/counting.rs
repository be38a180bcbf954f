//! A Slurm that counts, per kind, the calls a pool makes of the real one
//! it wraps: listings (`squeue`) and accounting (`sacct`), for the
//! benchmarks that say how often a pool asks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drover::slurm::{
    JobFate, JobId, JobInfo, JobRef, NodeAddress, PartitionInfo, SchedulerConfig, SiteInfo, Slurm,
    SlurmError, SubmitOptions, TestVerdict, UserLimits,
};

/// The real Slurm `inner`, counted.
pub struct Counting {
    pub inner: Arc<dyn Slurm>,
    pub listings: AtomicU64,
    pub fates: AtomicU64,
    /// Jobs the `fates` calls asked about.
    pub fates_jobs: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn Slurm>) -> Arc<Self> {
        Arc::new(Counting {
            inner,
            listings: AtomicU64::new(0),
            fates: AtomicU64::new(0),
            fates_jobs: AtomicU64::new(0),
        })
    }

    /// Listing and accounting calls so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.listings.load(Ordering::Relaxed),
            self.fates.load(Ordering::Relaxed),
            self.fates_jobs.load(Ordering::Relaxed),
        )
    }
}

#[async_trait::async_trait]
impl Slurm for Counting {
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError> {
        self.inner.submit(script, options).await
    }
    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError> {
        self.inner.test_submit(script).await
    }
    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError> {
        self.inner.cancel(jobs).await
    }
    async fn cancel_named(&self, name: &str) -> Result<(), SlurmError> {
        self.inner.cancel_named(name).await
    }
    async fn jobs(&self, name: Option<&str>) -> Result<Vec<JobInfo>, SlurmError> {
        self.listings.fetch_add(1, Ordering::Relaxed);
        self.inner.jobs(name).await
    }
    async fn jobs_named(&self, names: &[String]) -> Result<Vec<JobInfo>, SlurmError> {
        self.listings.fetch_add(1, Ordering::Relaxed);
        self.inner.jobs_named(names).await
    }
    async fn time_left(&self, job: JobRef) -> Result<Option<Duration>, SlurmError> {
        self.inner.time_left(job).await
    }
    async fn node_addresses(
        &self,
        partition: Option<&str>,
    ) -> Result<Vec<NodeAddress>, SlurmError> {
        self.inner.node_addresses(partition).await
    }
    async fn scheduler_config(&self) -> Result<SchedulerConfig, SlurmError> {
        self.inner.scheduler_config().await
    }
    async fn site(&self) -> Result<SiteInfo, SlurmError> {
        self.inner.site().await
    }
    async fn partitions(&self) -> Result<Vec<PartitionInfo>, SlurmError> {
        self.inner.partitions().await
    }
    async fn user_limits(&self) -> Result<Option<UserLimits>, SlurmError> {
        self.inner.user_limits().await
    }
    async fn fates(&self, jobs: &[JobRef]) -> Result<Option<Vec<JobFate>>, SlurmError> {
        self.fates.fetch_add(1, Ordering::Relaxed);
        self.fates_jobs
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        self.inner.fates(jobs).await
    }
    async fn release(&self, jobs: &[JobRef]) -> Result<bool, SlurmError> {
        self.inner.release(jobs).await
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
    fn child_env(&self) -> Vec<(String, String)> {
        self.inner.child_env()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn tests_without_submitting(&self) -> bool {
        self.inner.tests_without_submitting()
    }
}
