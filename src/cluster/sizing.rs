//! `Sizing`: the size a pool's jobs are submitted at now, its script and
//! one of its workers: the spec's at first, larger once jobs ended
//! OUT_OF_MEMORY (`job_growth.rs` decides when and how much).

use tokio::time::Instant;

use crate::config::{JobSpec, Memory};
use crate::protocol::{MemoryGrowthStatus, WorkerShape};

/// The size a pool's jobs are submitted at now.
#[derive(Debug, Clone)]
pub(crate) struct Sizing {
    /// The script new jobs are submitted with.
    pub script: String,
    /// One worker of such a job.
    pub shape: WorkerShape,
    /// The memory such a job asks Slurm for.
    pub job_mem: Memory,
    /// When the pool's jobs took this size: an OUT_OF_MEMORY end of a job
    /// submitted before says nothing of it.
    pub since: Instant,
    /// What the jobs asked for before they first grew.
    pub first: Memory,
    /// Times grown.
    pub times: u32,
    /// Why the jobs grow no more, once they cannot.
    pub stopped: Option<String>,
}

impl Sizing {
    /// The size a pool starts at.
    pub fn new(spec: &JobSpec, script: String, shape: WorkerShape, now: Instant) -> Self {
        Sizing {
            script,
            shape,
            job_mem: spec.job_mem,
            since: now,
            first: spec.job_mem,
            times: 0,
            stopped: None,
        }
    }

    /// What `status` shows: `None` until the jobs grew or could not.
    pub fn status(&self) -> Option<MemoryGrowthStatus> {
        (self.times > 0 || self.stopped.is_some()).then(|| MemoryGrowthStatus {
            from: self.first.to_slurm(),
            to: self.job_mem.to_slurm(),
            times: self.times,
            stopped: self.stopped.clone(),
        })
    }
}
