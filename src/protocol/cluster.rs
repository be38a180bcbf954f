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

/// How a job's end is known when it left Slurm's listing before the pool
/// saw it end: from Slurm's accounting (`sacct`), or not at all (a site
/// without accounting). A job whose end the listing showed has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum JobEnd {
    /// Read from `sacct`: the state and exit code are in the job's own
    /// fields, these are what only accounting keeps.
    Sacct {
        /// The signal that ended it (`0:9` is 9).
        signal: Option<i32>,
        /// The uid that cancelled it, when it was cancelled.
        cancelled_by: Option<u32>,
        /// How long it ran.
        elapsed_s: Option<u64>,
        /// The most memory a step of it held (where Slurm gathers it).
        max_rss_bytes: Option<u64>,
    },
    /// Ended, but Slurm keeps no accounting here: how is unknown.
    Unknown,
    /// Ended, but accounting has no record of it (asked for a while).
    Unrecorded,
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
    /// While it waits: when Slurm expects to start it (Unix seconds),
    /// once its backfill scheduler has an estimate (`squeue --start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_start: Option<u64>,
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
    /// When it was submitted (or the pool took it over), Unix seconds:
    /// what the page counts its age from, so that a row stays the same
    /// text from one refresh to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_s: Option<u64>,
    /// How its end is known, when it left the listing before the pool saw
    /// it end (always written, `null` otherwise, so readers such as
    /// Python's records find the field on every job).
    #[serde(default)]
    pub end: Option<JobEnd>,
    /// How often Slurm put it back in the queue after it ran (preempted,
    /// or its node failed): it kept its place in the pool each time.
    #[serde(default)]
    pub requeues: u32,
}

impl JobStatus {
    /// Why it waits, with when Slurm expects to start it, for people at
    /// Unix ms `now_ms`: `Resources; expected to start in 2m30s`.
    pub fn waiting_words(&self, now_ms: u64) -> String {
        let reason = self.reason.clone().unwrap_or_default();
        let Some(at) = self.expected_start else {
            return reason;
        };
        let when = match at.saturating_sub(now_ms / 1000) {
            0 => "expected to start now".to_string(),
            s => format!("expected to start in {}", super::short_duration(s)),
        };
        match reason.is_empty() {
            true => when,
            false => format!("{reason}; {when}"),
        }
    }

    /// Its state for people: Slurm's name, or what is known of an end
    /// Slurm kept no record of.
    pub fn state_words(&self) -> String {
        let state = self.end_words();
        match self.requeues {
            0 => state,
            1 => format!("{state}, requeued once"),
            n => format!("{state}, requeued {n} times"),
        }
    }

    fn end_words(&self) -> String {
        match (&self.end, &self.state) {
            (Some(JobEnd::Unknown), _) => "ended, state unknown (no accounting)".into(),
            (Some(JobEnd::Unrecorded), _) => "ended, state unknown (not in accounting)".into(),
            (
                Some(JobEnd::Sacct {
                    signal: Some(sig), ..
                }),
                s,
            ) => format!("{s} (signal {sig})"),
            (_, s) => s.to_string(),
        }
    }

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
    /// Preemptions of its jobs so far: requeued after they ran, or ended
    /// PREEMPTED.
    #[serde(default)]
    pub preemptions: u64,
    /// Preemptions within the last hour, against `preemptions-tolerated`.
    #[serde(default)]
    pub recent_preemptions: usize,
    /// How its jobs' memory grew after some ended OUT_OF_MEMORY (`None`:
    /// they ask what they were given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_growth: Option<MemoryGrowthStatus>,
    /// The group this status is of, in a pool with groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A pool with groups: each group's own status, in the order they were
    /// declared (the status itself then sums them up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ClusterStatus>,
}

/// A pool's jobs asking for more memory than they were given, after some
/// of them ended OUT_OF_MEMORY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryGrowthStatus {
    /// What they asked for at first, as Slurm writes it (`512M`).
    pub from: String,
    /// What new jobs ask for now.
    pub to: String,
    /// Times they grew.
    pub times: u32,
    /// Why they grow no more (the partition's limit, Slurm's refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl fmt::Display for MemoryGrowthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.times {
            0 => write!(f, "jobs ask {}", self.to)?,
            n => write!(
                f,
                "jobs ask {} (grown from {} after jobs ended OUT_OF_MEMORY, {n} time{})",
                self.to,
                self.from,
                if n == 1 { "" } else { "s" }
            )?,
        }
        if let Some(why) = &self.stopped {
            write!(f, "; grows no more: {why}")?;
        }
        Ok(())
    }
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

/// A request to size a pool (or a group of it) to its tasks, between
/// `min` and `max` workers, retiring workers idle for `idle_timeout_ms`
/// (the pool's own setting when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptRequest {
    /// Fewest workers.
    pub min: usize,
    /// Most workers.
    pub max: usize,
    /// How long a worker may idle before it retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// The group to adapt, in a pool with groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_job_says_why_and_when_slurm_expects_to_start_it() {
        let mut j = job("12", JobState::Pending, Some("Resources"));
        assert_eq!(j.waiting_words(1_000_000), "Resources");
        j.expected_start = Some(1_150);
        assert_eq!(
            j.waiting_words(1_000_000),
            "Resources; expected to start in 2m30s"
        );
        assert_eq!(
            j.waiting_words(2_000_000),
            "Resources; expected to start now"
        );
        j.reason = None;
        assert_eq!(j.waiting_words(1_149_000), "expected to start in 1s");
    }

    fn job(job: &str, state: JobState, reason: Option<&str>) -> JobStatus {
        JobStatus {
            job: job.parse().unwrap(),
            job_id: None,
            state,
            reason: reason.map(str::to_string),
            expected_start: None,
            node: None,
            exit_code: None,
            workers: Vec::new(),
            log: PathBuf::new(),
            action: None,
            group: None,
            age_s: None,
            submitted_s: None,
            end: None,
            requeues: 0,
        }
    }

    #[test]
    fn an_end_says_where_it_was_read_and_an_unknown_one_says_so() {
        let mut j = job("7", JobState::Vanished, None);
        assert_eq!(j.state_words(), "VANISHED");
        j.end = Some(JobEnd::Unknown);
        assert_eq!(j.state_words(), "ended, state unknown (no accounting)");
        assert_eq!(
            serde_json::to_value(&j).unwrap()["end"],
            serde_json::json!({"from": "unknown"})
        );
        j.state = JobState::Cancelled;
        j.end = Some(JobEnd::Sacct {
            signal: Some(15),
            cancelled_by: Some(0),
            elapsed_s: Some(12),
            max_rss_bytes: None,
        });
        assert_eq!(j.state_words(), "CANCELLED (signal 15)");
        j.requeues = 2;
        assert_eq!(j.state_words(), "CANCELLED (signal 15), requeued 2 times");
        let back: JobStatus = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
        assert_eq!(back, j);
        // A status from before `end` existed still reads.
        let mut old = serde_json::to_value(&j).unwrap();
        old.as_object_mut().unwrap().remove("end");
        assert_eq!(serde_json::from_value::<JobStatus>(old).unwrap().end, None);
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
            preemptions: 0,
            recent_preemptions: 0,
            memory_growth: None,
            group: None,
            groups: Vec::new(),
        };
        assert_eq!(status.job_summary(), "2 PENDING (Resources), 1 RUNNING");
        assert_eq!(status.job_for("2_1").unwrap().job.to_string(), "2_1");
        assert!(status.job_for("w9").is_none());
    }
}
