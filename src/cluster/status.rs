//! A pool's status, assembled from its books (jobs as of the last look at
//! Slurm) and the scheduler's workers as they are this instant.

use std::collections::HashMap;

use super::adapt::Adaptive;
use super::books::{job_of, Action, Books, EndLookup, JobRecord};
use super::pool::Pool;
use crate::protocol::{AdaptStatus, ClusterStatus, JobAction, JobStatus, PoolPhase, WorkerInfo};
use crate::slurm::{JobRef, JobState};

/// What a status is made of.
pub(crate) struct Sources<'a> {
    pub pool: &'a Pool,
    pub books: &'a Books,
    pub workers: Vec<WorkerInfo>,
    pub adapt: Option<&'a Adaptive>,
}

/// The status of `pool` now: job states as of the last look at Slurm,
/// workers as the scheduler has them this instant.
pub(crate) fn of(pool: &Pool) -> ClusterStatus {
    let workers = pool.scheduler.workers();
    let adapt = pool.adapt.lock().clone();
    let books = pool.books();
    assemble(&Sources {
        pool,
        books: &books,
        workers,
        adapt: adapt.as_ref(),
    })
}

/// The status of the pool.
pub(crate) fn assemble(s: &Sources<'_>) -> ClusterStatus {
    let (pool, books) = (s.pool, s.books);
    let mut by_job: HashMap<JobRef, Vec<WorkerInfo>> = HashMap::new();
    for w in &s.workers {
        if let Some(key) = job_of(w) {
            by_job.entry(key).or_default().push(w.clone());
        }
    }
    let jobs = books
        .jobs()
        .values()
        .map(|r| job_status(pool, r, by_job.remove(&r.job).unwrap_or_default()))
        .collect();
    let processes = pool.spec.workers_per_job() as usize;
    ClusterStatus {
        cluster_id: pool.scheduler.cluster_id().clone(),
        job_name: pool.spec.job_name.clone(),
        target_workers: books.target().saturating_mul(processes),
        target_jobs: books.target(),
        sized: books.sized(),
        processes: pool.spec.workers_per_job(),
        registered: match &pool.group {
            None => pool.scheduler.live_workers(),
            Some(g) => s
                .workers
                .iter()
                .filter(|w| w.state.is_live() && w.offer.group.as_ref() == Some(g))
                .count(),
        },
        dask: pool.dask.as_ref().map(|d| d.status()),
        jobs,
        phase: books.phase(),
        last_error: books.last_error().cloned(),
        failures: books.failures().iter().cloned().collect(),
        held_back: books.held_back().cloned(),
        limit_refusals: books.limit_refusals(),
        preemptions: books.preemptions(),
        recent_preemptions: books.recent_preemptions(tokio::time::Instant::now()),
        submitted: books.submitted_count(),
        slurm_calls: pool.slurm.calls(),
        slurm_api: pool.slurm.describe(),
        log_directory: pool.spec.log_directory.clone(),
        adapt: s.adapt.map(|a| AdaptStatus {
            min_workers: a.min_jobs.saturating_mul(processes),
            max_workers: a.max_jobs.saturating_mul(processes),
            decision: a.decision.clone(),
        }),
        memory_growth: pool.sizing.lock().status(),
        group: pool.group.clone(),
        groups: Vec::new(),
    }
}

fn job_status(pool: &Pool, r: &JobRecord, workers: Vec<WorkerInfo>) -> JobStatus {
    let live = workers.iter().any(|w| w.state.is_live());
    // Registered workers show the job runs, and know its id and node,
    // before the next look at Slurm does.
    let state = match &r.state {
        JobState::Pending | JobState::Configuring if live => JobState::Running,
        s => s.clone(),
    };
    let job_id = r.job_id.or_else(|| {
        workers
            .iter()
            .find_map(|w| w.slurm.job_id.map(crate::slurm::JobId::new))
    });
    let node = r
        .node
        .clone()
        .or_else(|| workers.first().map(|w| w.hostname.clone()));
    JobStatus {
        job: r.job,
        job_id,
        // A reason is why a job waits: none once its workers run.
        reason: (state == JobState::Pending)
            .then(|| r.reason.clone())
            .flatten(),
        expected_start: (state == JobState::Pending)
            .then_some(r.expected_start)
            .flatten(),
        state,
        node,
        exit_code: r.exit_code,
        log: pool.log_paths(r.job).0,
        workers,
        action: match r.action {
            Some(Action::Retiring) => Some(JobAction::Retiring),
            Some(Action::Cancelling) => Some(JobAction::Cancelling),
            None if r.expiring && r.state.is_active() => Some(JobAction::Replaced),
            None => None,
        },
        group: pool.group.clone(),
        age_s: Some(r.submitted_at.elapsed().as_secs()),
        submitted_s: Some(r.submitted_s),
        end: match &r.end {
            EndLookup::Known(end) => Some(end.clone()),
            EndLookup::Listed | EndLookup::Asking { .. } => None,
        },
        requeues: r.requeues,
    }
}

/// The status of a cluster from its groups' own: the sum of them, with
/// each one kept (in `groups`); a cluster without groups is its one pool.
pub(crate) fn combine(mut parts: Vec<ClusterStatus>) -> ClusterStatus {
    if parts.len() == 1 && parts[0].group.is_none() {
        return parts.remove(0);
    }
    let mut all = parts[0].clone();
    all.group = None;
    all.job_name = parts
        .iter()
        .map(|p| p.job_name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    all.jobs = parts.iter().flat_map(|p| p.jobs.clone()).collect();
    all.target_workers = parts.iter().map(|p| p.target_workers).sum();
    all.target_jobs = parts.iter().map(|p| p.target_jobs).sum();
    all.registered = parts.iter().map(|p| p.registered).sum();
    all.sized = parts.iter().all(|p| p.sized);
    all.submitted = parts.iter().map(|p| p.submitted).sum();
    all.limit_refusals = parts.iter().map(|p| p.limit_refusals).sum();
    all.preemptions = parts.iter().map(|p| p.preemptions).sum();
    all.recent_preemptions = parts.iter().map(|p| p.recent_preemptions).sum();
    // Each group grows on its own: its line is in its own status.
    all.memory_growth = None;
    all.failures = parts.iter().flat_map(|p| p.failures.clone()).collect();
    all.phase = parts
        .iter()
        .map(|p| p.phase.clone())
        .find(|p| *p != PoolPhase::Running)
        .unwrap_or_default();
    all.last_error = parts.iter().find_map(|p| p.last_error.clone());
    all.held_back = parts.iter().find_map(|p| p.held_back.clone());
    all.adapt = None;
    all.groups = parts;
    all
}
