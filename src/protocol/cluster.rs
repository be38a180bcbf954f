//! What the control API says about a pool: every job with its Slurm state
//! and workers, what was asked, and what went wrong; and what a client may
//! ask of it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AdaptStatus, ClusterId, Holdback, PoolError, PoolPhase, StartupFailure, WorkerInfo};
use crate::slurm::{JobId, JobRef, JobState};

/// What drover is doing with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Its workers were asked to retire.
    Retiring,
    /// It was cancelled.
    Cancelling,
    /// Its workers leave soon for the time limit; a replacement is on its way.
    Replaced,
}

impl fmt::Display for JobAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobAction::Retiring => "retiring",
            JobAction::Cancelling => "cancelling",
            JobAction::Replaced => "leaving before its time limit; replaced",
        })
    }
}

/// One worker job of a cluster, as Slurm and the scheduler see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job or array task, as `scancel` names it (`123`, `120_4`).
    pub job: JobRef,
    /// Its own job id, once Slurm has given it one.
    pub job_id: Option<JobId>,
    /// Slurm's state (`PENDING`, `RUNNING`, `FAILED`...).
    pub state: JobState,
    /// Why it is pending, when it is.
    pub reason: Option<String>,
    /// Node it runs or ran on.
    pub node: Option<String>,
    /// Exit code, once ended.
    pub exit_code: Option<i32>,
    /// The workers registered from it.
    pub workers: Vec<WorkerInfo>,
    /// Its stdout log.
    pub log: PathBuf,
    /// What drover is doing with it, if anything.
    pub action: Option<JobAction>,
    /// The pool group it belongs to, in a pool with groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Seconds since it was submitted (or since the pool took it over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
}

impl JobStatus {
    /// Seconds until the first of its workers' allocations ends, while it
    /// is active and a worker said when.
    pub fn time_left_s(&self, now_ms: u64) -> Option<u64> {
        let end = self.workers.iter().filter_map(|w| w.allocation_end).min()?;
        self.state
            .is_active()
            .then(|| end.saturating_mul(1000).saturating_sub(now_ms) / 1000)
    }
}

/// A `dask` pool's Dask scheduler in a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskStatus {
    /// Its comm address.
    pub address: String,
    /// Its HTTP base URL.
    pub http: String,
    /// Dask's scheduler file.
    pub scheduler_file: PathBuf,
    /// Workers registered with it at the last look, if it answered.
    pub workers: Option<usize>,
}

/// A whole cluster: what was asked, every job, and what went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// The Slurm job name its jobs carry.
    pub job_name: String,
    /// Workers asked for.
    pub target_workers: usize,
    /// Jobs that makes.
    pub target_jobs: usize,
    /// Whether a size (scale or adapt) was asked for since the pool
    /// started: until then a target of 0 means nothing yet.
    #[serde(default)]
    pub sized: bool,
    /// Workers per job: its processes on each of its nodes.
    pub processes: u32,
    /// Live registered workers, each counted once.
    pub registered: usize,
    /// The Dask scheduler of a `dask` pool, and how many workers it sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask: Option<DaskStatus>,
    /// Its jobs that Slurm still shows, or that ended recently.
    pub jobs: Vec<JobStatus>,
    /// What its loop does: running, Slurm unreachable (nothing submitted
    /// or cancelled), stopped (and why), closing.
    #[serde(default)]
    pub phase: PoolPhase,
    /// The last error (a refused submission, a failed Slurm call).
    pub last_error: Option<PoolError>,
    /// Recent start-up failures, newest last.
    pub failures: Vec<StartupFailure>,
    /// Jobs submitted so far.
    pub submitted: u64,
    /// Slurm commands run (or slurmrestd requests made) so far.
    pub slurm_calls: u64,
    /// How the pool reaches Slurm: its commands, or slurmrestd at an address.
    #[serde(default)]
    pub slurm_api: String,
    /// Where the job logs go.
    pub log_directory: PathBuf,
    /// The adaptive range and its latest decision, when the pool adapts.
    #[serde(default)]
    pub adapt: Option<AdaptStatus>,
    /// Why the last round submitted fewer jobs than needed (site limits,
    /// Slurm's per-user cap, Slurm's scheduling passes).
    #[serde(default)]
    pub held_back: Option<Holdback>,
    /// Submissions Slurm refused for a limit so far: a pool at a cap asks
    /// ever less often, so this grows slowly.
    #[serde(default)]
    pub limit_refusals: u64,
    /// The group this status is of, in a pool with groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A pool with groups: each group's own status, in the order they were
    /// declared (the status itself then sums them up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ClusterStatus>,
}

impl ClusterStatus {
    /// The job that runs `target`: a worker's name or id (`w3`), or a job
    /// (`120_4`) or job id.
    pub fn job_for(&self, target: &str) -> Option<&JobStatus> {
        self.jobs.iter().find(|j| {
            j.job.to_string() == target
                || j.job_id.is_some_and(|i| i.to_string() == target)
                || j.workers.iter().any(|w| {
                    w.name == target || w.id.to_string() == target || w.id.0.to_string() == target
                })
        })
    }

    /// The jobs by state, with pending reasons: "3 RUNNING, 5 PENDING
    /// (Resources)". Jobs that completed on purpose are left out.
    pub fn job_summary(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for j in &self.jobs {
            if j.state == JobState::Completed && j.action.is_some() {
                continue;
            }
            let key = match &j.reason {
                Some(r) if j.state == JobState::Pending => format!("PENDING ({r})"),
                _ => j.state.to_string(),
            };
            *counts.entry(key).or_default() += 1;
        }
        if counts.is_empty() {
            return "no jobs".into();
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A request to scale a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Workers wanted.
    pub workers: usize,
    /// The group to scale, in a pool with groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job: &str, state: JobState, reason: Option<&str>) -> JobStatus {
        JobStatus {
            job: job.parse().unwrap(),
            job_id: None,
            state,
            reason: reason.map(str::to_string),
            node: None,
            exit_code: None,
            workers: Vec::new(),
            log: PathBuf::new(),
            action: None,
            group: None,
            age_s: None,
        }
    }

    #[test]
    fn the_summary_counts_states_with_pending_reasons() {
        let mut done = job("4", JobState::Completed, None);
        done.action = Some(JobAction::Retiring);
        let status = ClusterStatus {
            cluster_id: "abc".parse().unwrap(),
            job_name: "w".into(),
            target_workers: 3,
            target_jobs: 3,
            sized: true,
            processes: 1,
            registered: 1,
            dask: None,
            jobs: vec![
                job("1", JobState::Running, None),
                job("2_0", JobState::Pending, Some("Resources")),
                job("2_1", JobState::Pending, Some("Resources")),
                done,
            ],
            phase: PoolPhase::Running,
            last_error: None,
            failures: Vec::new(),
            submitted: 4,
            slurm_calls: 0,
            slurm_api: String::new(),
            log_directory: PathBuf::new(),
            adapt: None,
            held_back: None,
            limit_refusals: 0,
            group: None,
            groups: Vec::new(),
        };
        assert_eq!(status.job_summary(), "2 PENDING (Resources), 1 RUNNING");
        assert_eq!(status.job_for("2_1").unwrap().job.to_string(), "2_1");
        assert!(status.job_for("w9").is_none());
    }
}
