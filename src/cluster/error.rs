//! `ClusterError`: what can stop a pool from doing what was asked, each
//! with its exit status.

use std::time::Duration;

use crate::config::SpecError;
use crate::dask::DaskError;
use crate::exit::{ExitStatus, FAILURE};
use crate::protocol::StartupFailure;
use crate::scheduler::SchedulerError;
use crate::script::ScriptError;
use crate::slurm::SlurmError;

/// A cluster that cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The job specification or a pool setting is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The job script does not render.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The scheduler could not start.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// Slurm refused, or did not answer.
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    /// The Dask scheduler could not be started or reached.
    #[error(transparent)]
    Dask(#[from] DaskError),
    /// A worker job ended before its worker registered, or Slurm refused it.
    #[error("{0}{details}", details = failure_details(.0))]
    StartupFailed(StartupFailure),
    /// Submitting stopped after repeated start-up failures.
    #[error("{0}")]
    Stopped(crate::protocol::StopCause),
    /// Not enough workers registered in time.
    #[error("{registered} of {wanted} workers registered within {waited:?}; {jobs}")]
    WaitTimeout {
        /// Workers asked for.
        wanted: usize,
        /// Workers that registered.
        registered: usize,
        /// How long it waited.
        waited: Duration,
        /// The jobs by state, with pending reasons.
        jobs: String,
    },
    /// Jobs were still listed after closing and cancelling.
    #[error("{0} jobs of the cluster were still listed after cancelling them")]
    Leftover(usize),
    /// No job or worker goes by that name.
    #[error("`{0}` is neither a worker nor a job of this cluster; see its status")]
    NoSuchJob(String),
    /// What was asked is not something this pool can do, and why.
    #[error("{0}")]
    Unsupported(String),
    /// No group of the cluster goes by that name.
    #[error("group: `{asked}` is not one of this cluster's groups; accepted: {groups}")]
    NoSuchGroup {
        /// The name given.
        asked: String,
        /// The cluster's groups.
        groups: String,
    },
    /// The cluster is closed.
    #[error("the cluster is closed")]
    Closed,
    /// A directory or file drover would write is not safe to use
    /// (another user's, open to others, a planted link).
    #[error("log directory: {0}")]
    Files(#[from] crate::private_fs::FsError),
    /// A file could not be read or written.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        cause: std::io::Error,
    },
}

/// What the one line of a failure leaves out: the log's last lines, or the
/// rest of Slurm's words.
fn failure_details(f: &StartupFailure) -> String {
    match f {
        StartupFailure::JobEnded { log_tail, .. } => {
            format!("; last lines of its log:\n{log_tail}")
        }
        StartupFailure::Refused { message, .. } => match message.split_once('\n') {
            Some((_, rest)) => format!("; Slurm said:\n{rest}"),
            None => String::new(),
        },
    }
}

impl ExitStatus for ClusterError {
    fn exit_code(&self) -> u8 {
        match self {
            ClusterError::Spec(e) => e.exit_code(),
            ClusterError::Script(e) => e.exit_code(),
            ClusterError::Scheduler(e) => e.exit_code(),
            ClusterError::Slurm(e) => e.exit_code(),
            ClusterError::Dask(e) => e.exit_code(),
            ClusterError::Files(e) => e.exit_code(),
            ClusterError::NoSuchJob(_)
            | ClusterError::NoSuchGroup { .. }
            | ClusterError::Unsupported(_)
            | ClusterError::StartupFailed(StartupFailure::Refused {
                must_change: true, ..
            }) => crate::exit::USAGE,
            ClusterError::StartupFailed(_)
            | ClusterError::Stopped(_)
            | ClusterError::WaitTimeout { .. }
            | ClusterError::Leftover(_)
            | ClusterError::Closed
            | ClusterError::Io { .. } => FAILURE,
        }
    }
}
