//! What the status page shows, worked out from the pool's status, its
//! workers, its tasks and its timeline: plain values that the templates
//! only lay out. No I/O here; `render` fills the templates.

use serde::Serialize;

use crate::protocol::{ClusterStatus, JobEnd, JobStatus, PoolPhase, TaskCounts, WorkerInfo};
use crate::slurm::JobState;

/// Everything the page's live part shows.
#[derive(Debug, Serialize)]
pub(crate) struct View {
    pub cluster_id: String,
    pub job_name: String,
    pub slurm_api: String,
    /// When this was worked out (UTC, `HH:MM:SS`).
    pub at: String,
    /// The same in Unix seconds: what the page's script counts the rows'
    /// ages and times left from until its next update.
    pub now_s: u64,
    /// The pool as a whole; `None` for a scheduler without a pool.
    pub pool: Option<PoolView>,
    /// Each group of a pool with groups.
    pub groups: Vec<PoolView>,
    pub jobs: Vec<JobView>,
    /// Jobs not listed (beyond `MAX_ROWS`).
    pub jobs_hidden: usize,
    /// A scheduler without a pool: its workers.
    pub workers: Vec<WorkerView>,
    pub tasks: TaskCounts,
    /// Tasks ended per minute, over the last minute.
    pub rate: Option<String>,
    /// What keeps the pool from its target, newest last.
    pub errors: Vec<ErrorView>,
    /// Dask's own dashboard, for a Dask pool.
    pub dask_dashboard: Option<String>,
    /// What the pool cost and used so far (`cost.rs`).
    pub cost: Option<super::cost::CostView>,
}

/// A pool or one of its groups: what it was asked for and what it has.
#[derive(Debug, Serialize)]
pub(crate) struct PoolView {
    pub name: String,
    pub target_workers: usize,
    pub target_jobs: usize,
    pub registered: usize,
    pub summary: String,
    pub adapt: Option<String>,
    /// Why it holds back, stopped, or cannot reach Slurm.
    pub notes: Vec<String>,
}

/// One job's row.
#[derive(Debug, Serialize)]
pub(crate) struct JobView {
    pub job: String,
    pub job_id: String,
    pub group: String,
    pub state: String,
    /// `pending`, `running`, `failed` or `ended`, for its colour.
    pub class: &'static str,
    /// Slurm's reason it waits, as Slurm words it.
    pub reason: String,
    /// The reason with when Slurm expects to start it, for people now
    /// (a worker's page, rendered once).
    pub waiting: String,
    pub node: String,
    pub workers: Vec<String>,
    pub age: String,
    pub time_left: String,
    /// Unix seconds: when it was submitted, when its allocation ends and
    /// when Slurm expects to start it. The live rows carry these, not
    /// the words, so that a row only changes when the job does; the
    /// page's script writes the words.
    pub since_s: Option<u64>,
    pub until_s: Option<u64>,
    pub expected_s: Option<u64>,
    pub action: String,
    /// The name its page goes by: its first worker's, else the job's.
    pub page: String,
}

/// A worker's row, for a scheduler without a pool.
#[derive(Debug, Serialize)]
pub(crate) struct WorkerView {
    pub name: String,
    pub job: String,
    pub node: String,
    pub state: String,
    pub running: u32,
}

/// A failure worth a look.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorView {
    pub title: String,
    pub details: String,
    /// The page of the job it is about, if any.
    pub page: Option<String>,
}

/// The most job rows the page lists.
pub(crate) const MAX_ROWS: usize = 5000;
/// The most errors listed.
const MAX_ERRORS: usize = 20;

/// The page's facts at `now_ms`.
pub(crate) fn view(
    cluster: Option<&ClusterStatus>,
    workers: &[WorkerInfo],
    tasks: TaskCounts,
    rate: Option<f64>,
    now_ms: u64,
) -> View {
    let jobs = cluster.map(|c| c.jobs.as_slice()).unwrap_or_default();
    View {
        cluster_id: cluster
            .map(|c| c.cluster_id.to_string())
            .unwrap_or_default(),
        job_name: cluster.map(|c| c.job_name.clone()).unwrap_or_default(),
        slurm_api: cluster.map(|c| c.slurm_api.clone()).unwrap_or_default(),
        at: clock(now_ms),
        now_s: now_ms / 1000,
        pool: cluster.map(|c| pool_view(c, "pool")),
        groups: cluster
            .map(|c| {
                c.groups
                    .iter()
                    .map(|g| pool_view(g, g.group.as_deref().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default(),
        jobs: jobs
            .iter()
            .take(MAX_ROWS)
            .map(|j| job_view(j, now_ms))
            .collect(),
        jobs_hidden: jobs.len().saturating_sub(MAX_ROWS),
        workers: match cluster {
            Some(_) => Vec::new(),
            None => workers.iter().take(MAX_ROWS).map(worker_view).collect(),
        },
        tasks,
        rate: rate.map(|r| format!("{r:.1} tasks/min")),
        errors: cluster.map(errors).unwrap_or_default(),
        dask_dashboard: cluster
            .and_then(|c| c.dask.as_ref())
            .map(|d| format!("{}/status", d.http.trim_end_matches('/'))),
        cost: None,
    }
}

fn pool_view(c: &ClusterStatus, name: &str) -> PoolView {
    let mut notes = Vec::new();
    if !matches!(c.phase, PoolPhase::Running | PoolPhase::Closing) {
        notes.push(c.phase.to_string());
    }
    notes.extend(c.held_back.iter().map(ToString::to_string));
    if c.preemptions > 0 {
        notes.push(format!(
            "preempted: {} times, {} in the last hour",
            c.preemptions, c.recent_preemptions
        ));
    }
    notes.extend(c.memory_growth.iter().map(|g| format!("memory: {g}")));
    PoolView {
        name: name.to_string(),
        target_workers: c.target_workers,
        target_jobs: c.target_jobs,
        registered: c.registered,
        summary: c.job_summary(),
        adapt: c.adapt.as_ref().map(ToString::to_string),
        notes,
    }
}

fn class(state: &JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Running | JobState::Configuring | JobState::Completing => "running",
        s if s.is_failure() => "failed",
        _ => "ended",
    }
}

/// One job's row (and the head of its own page).
pub(crate) fn job_view(j: &JobStatus, now_ms: u64) -> JobView {
    let left = j.time_left_s(now_ms).map(duration);
    JobView {
        job: j.job.to_string(),
        job_id: j.job_id.map(|i| i.to_string()).unwrap_or_default(),
        group: j.group.clone().unwrap_or_default(),
        state: j.state_words(),
        // An end no one recorded is no failure anyone saw.
        class: match j.end {
            Some(JobEnd::Unknown | JobEnd::Unrecorded) => "ended",
            _ => class(&j.state),
        },
        reason: j.reason.clone().unwrap_or_default(),
        waiting: j.waiting_words(now_ms),
        node: j.node.clone().unwrap_or_default(),
        workers: j.workers.iter().map(|w| w.name.clone()).collect(),
        age: j.age_s.map(duration).unwrap_or_default(),
        time_left: left.unwrap_or_default(),
        since_s: j.submitted_s,
        until_s: j
            .workers
            .iter()
            .filter_map(|w| w.allocation_end)
            .min()
            .filter(|_| j.state.is_active()),
        expected_s: j.expected_start,
        action: j.action.map(|a| a.to_string()).unwrap_or_default(),
        page: j
            .workers
            .first()
            .map(|w| w.name.clone())
            .unwrap_or_else(|| j.job.to_string()),
    }
}

fn worker_view(w: &WorkerInfo) -> WorkerView {
    WorkerView {
        name: w.name.clone(),
        job: w.slurm.job_id.map(|i| i.to_string()).unwrap_or_default(),
        node: w.hostname.clone(),
        state: format!("{:?}", w.state),
        running: w.running_tasks,
    }
}

/// Start-up failures with their log tails, then jobs that ended badly
/// after their workers came, newest last.
fn errors(c: &ClusterStatus) -> Vec<ErrorView> {
    let all: Vec<&ClusterStatus> = match c.groups.is_empty() {
        true => vec![c],
        false => c.groups.iter().collect(),
    };
    let mut out: Vec<ErrorView> = Vec::new();
    for part in all {
        for f in &part.failures {
            let page = match f {
                crate::protocol::StartupFailure::JobEnded { job, .. } => Some(job.to_string()),
                crate::protocol::StartupFailure::Refused { .. } => None,
            };
            out.push(ErrorView {
                title: f.to_string(),
                details: f.details().to_string(),
                page,
            });
        }
    }
    for j in c
        .jobs
        .iter()
        .filter(|j| j.state.is_failure() && !j.workers.is_empty())
    {
        let code = j.exit_code.map(|c| format!(" with exit code {c}"));
        out.push(ErrorView {
            title: format!(
                "job {} ended {}{}",
                j.job,
                j.state,
                code.unwrap_or_default()
            ),
            details: String::new(),
            page: Some(j.job.to_string()),
        });
    }
    let skip = out.len().saturating_sub(MAX_ERRORS);
    out.into_iter().skip(skip).collect()
}

use crate::protocol::short_duration as duration;

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
