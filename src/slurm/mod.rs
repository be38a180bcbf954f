//! Talking to Slurm: one trait, `Slurm`, for everything drover asks of it,
//! so that the logic above it runs the same on the command-line tools
//! (`SlurmCli`, today) and on a REST backend later.

mod cli;
mod job;

pub use cli::SlurmCli;
pub use job::{expand_tasks, JobInfo, JobRef, JobState};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Slurm job id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(u64);

impl JobId {
    /// The id `n`.
    pub const fn new(n: u64) -> Self {
        JobId(n)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = String;

    /// Parses `123`, or `sbatch --parsable`'s `123;cluster`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s.trim().split(';').next().unwrap_or_default();
        id.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(JobId)
            .ok_or_else(|| format!("`{}` is not a Slurm job id", s.trim()))
    }
}

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
}

/// Slurm's verdict on a script it was asked to check, not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestVerdict {
    /// Whether Slurm would accept the job.
    pub accepted: bool,
    /// Slurm's own words, verbatim.
    pub message: String,
}

/// A Slurm command that failed, with Slurm's own message.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// The command could not be started at all.
    #[error("cannot run `{command}`: {cause} (is Slurm installed and on PATH?)")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// Slurm's message, verbatim.
        stderr: String,
    },
    /// The command did not finish in time.
    #[error("`{command}` did not finish within {secs} s")]
    TimedOut {
        /// The command.
        command: String,
        /// The limit.
        secs: u64,
    },
    /// The command's output was not what it documents.
    #[error("`{command}` printed something unexpected: {output}")]
    Unexpected {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
}

/// Everything drover asks of Slurm.
#[async_trait::async_trait]
pub trait Slurm: Send + Sync {
    /// Submits `script` as one batch job.
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError>;

    /// Asks Slurm whether it would accept `script`, submitting nothing.
    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError>;

    /// Cancels every job or array task in `jobs` with one call.
    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError>;

    /// Every job Slurm knows, recently ended ones included, with one call;
    /// array tasks not yet started come one entry per task.
    async fn jobs(&self) -> Result<Vec<JobInfo>, SlurmError>;

    /// Time left before job `id` reaches its time limit; `None` when it has
    /// none or Slurm does not say.
    async fn time_left(&self, job: JobRef) -> Result<Option<std::time::Duration>, SlurmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_parse_from_parsable_output() {
        assert_eq!("123".parse::<JobId>().unwrap(), JobId::new(123));
        assert_eq!(
            "77;drover-local\n".parse::<JobId>().unwrap(),
            JobId::new(77)
        );
        assert!("".parse::<JobId>().is_err());
        assert!("abc".parse::<JobId>().is_err());
    }
}
