//! The cluster's books: every job it submitted, what Slurm and the
//! scheduler last said of each, and the decision of what to do next. Pure
//! logic, no I/O, so it is tested without Slurm.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{budget, Gates};
use super::cap::SubmitCap;
pub(crate) use super::job_record::{job_of, Action, EndLookup, JobRecord};
use super::pace::Pacer;
use super::Limits;
use crate::protocol::{
    Holdback, PoolError, PoolPhase, StartupFailure, StopCause, WorkerId, WorkerInfo,
};
use crate::slurm::{JobInfo, JobRef, JobState, SchedulerConfig};

/// What one reconcile round decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub submit: usize,
    pub cancel: Vec<JobRef>,
    pub retire: Vec<WorkerId>,
    /// Jobs that ended before registering, whose logs should be read.
    pub failed: Vec<JobRef>,
    /// Jobs Slurm held after a failed launch, to release (`held.rs`).
    pub release: Vec<JobRef>,
}

/// Slurm not answering, since when, and its latest words.
#[derive(Debug, Clone)]
struct Outage {
    since_ms: u64,
    error: String,
}

/// Where the pool is headed, apart from Slurm's answering (an outage can
/// come in any of these).
#[derive(Debug, Clone, PartialEq)]
enum Course {
    /// Toward the target.
    Running,
    /// Submitting nothing more until a new size is asked for.
    Stopped(StopCause),
    /// Toward no jobs at all: workers retire; jobs without a live worker
    /// are cancelled at once, the rest at `deadline`.
    Closing { began: Instant, deadline: Instant },
}

/// The whole cluster's books.
#[derive(Debug)]
pub(crate) struct Books {
    target_jobs: usize,
    /// Whether a size was asked for since the pool started.
    sized: bool,
    jobs: BTreeMap<JobRef, JobRecord>,
    consecutive_failures: u32,
    max_failures: u32,
    course: Course,
    last_error: Option<PoolError>,
    failures: VecDeque<StartupFailure>,
    /// Start-up failures ever seen; waiters compare it with their start.
    failures_seen: u64,
    next_submit_at: Instant,
    backoff: Duration,
    submitted: u64,
    /// How long a job never listed may be missing from Slurm's listing
    /// before it is taken as gone (Slurm lists a new job at once; this is
    /// slack). A job listed once and then missing is gone at once.
    vanish_grace: Duration,
    /// How long before a worker leaves for its time limit its replacement
    /// is submitted, on top of the last observed start-up time.
    replace_lead: Duration,
    /// The time from submission to registration of the latest job.
    startup: Option<Duration>,
    /// Site limits on submitting.
    limits: Limits,
    /// When recent jobs were submitted (for the rate limit).
    recent_submits: VecDeque<Instant>,
    /// Why fewer jobs than needed were submitted in the last round.
    held_back: Option<Holdback>,
    /// Slurm's per-user cap, as the pool has met it.
    cap: SubmitCap,
    /// Submissions paced to Slurm's scheduling passes.
    pacer: Pacer,
    /// The limits last logged, so a lasting hold is logged once.
    limits_logged: Vec<crate::protocol::HoldReason>,
    /// Nodes that lately lost every worker they ran, and since when:
    /// replacements keep off them for a while.
    suspect_nodes: BTreeMap<String, Instant>,
    /// Set while Slurm does not answer: nothing is submitted or cancelled,
    /// and nothing is concluded about jobs it cannot show.
    outage: Option<Outage>,
    /// The index the next submitted job gets: every job of the pool has its
    /// own, never reused (Dask worker names are `NAME-INDEX`).
    next_index: u64,
    /// What to do with jobs Slurm holds after a failed launch.
    held_jobs: crate::config::HeldJobs,
    /// Preemptions of the pool's jobs so far (`preempt.rs`).
    preemptions_seen: u64,
    /// When the latest preemptions were seen.
    preempted_at: VecDeque<Instant>,
    /// Jobs a person asked to cancel (from the page), cancelled at the
    /// next round.
    asked_cancels: Vec<JobRef>,
}

/// How long replacements keep off a node that lost its workers.
const SUSPECT_FOR: Duration = Duration::from_secs(300);
/// Keep at most this many ended jobs in the books.
const KEEP_ENDED: usize = 200;
/// Keep this many recent start-up failures.
const KEEP_FAILURES: usize = 20;
/// Retry a cancellation Slurm has not acted on after this long.
const RECANCEL_AFTER: Duration = Duration::from_secs(30);
/// The loop's pauses while closing, first and longest.
const CLOSE_POLL_FIRST: Duration = Duration::from_millis(40);
const CLOSE_POLL_MAX: Duration = Duration::from_millis(500);
/// The longest wait between submissions after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

mod failures;
mod observe;
mod preempt;
mod removal;

impl Books {
    pub fn new(max_failures: u32, backoff: Duration, vanish_grace: Duration) -> Self {
        Books {
            target_jobs: 0,
            sized: false,
            jobs: BTreeMap::new(),
            consecutive_failures: 0,
            max_failures: max_failures.max(1),
            course: Course::Running,
            last_error: None,
            failures: VecDeque::new(),
            failures_seen: 0,
            next_submit_at: Instant::now(),
            backoff,
            submitted: 0,
            vanish_grace,
            replace_lead: Duration::from_secs(30),
            startup: None,
            limits: Limits::default(),
            recent_submits: VecDeque::new(),
            held_back: None,
            cap: SubmitCap::default(),
            pacer: Pacer::new(SchedulerConfig::default()),
            limits_logged: Vec::new(),
            suspect_nodes: BTreeMap::new(),
            outage: None,
            next_index: 0,
            held_jobs: crate::config::HeldJobs::Release,
            preemptions_seen: 0,
            preempted_at: VecDeque::new(),
            asked_cancels: Vec::new(),
        }
    }

    /// Reserves `n` consecutive job indexes; returns the first.
    pub fn take_indexes(&mut self, n: u64) -> u64 {
        let first = self.next_index;
        self.next_index = self.next_index.saturating_add(n);
        first
    }

    /// Records freshly submitted jobs.
    pub fn submitted(&mut self, jobs: impl IntoIterator<Item = JobRef>, now: Instant) {
        for job in jobs {
            self.cap.accepted();
            self.submitted += 1;
            self.recent_submits.push_back(now);
            self.jobs.insert(job, JobRecord::new(job, now));
        }
    }

    /// Sets the target; asking again is how a user retries after a crash loop.
    pub fn set_target(&mut self, jobs: usize, now: Instant) {
        self.target_jobs = jobs;
        self.sized = true;
        if matches!(self.course, Course::Stopped(_)) {
            self.course = Course::Running;
            self.consecutive_failures = 0;
            self.next_submit_at = now;
        }
    }

    /// The site's ways: its limits, how early replacements go, and the
    /// scheduling passes submissions are paced to.
    pub fn for_site(
        mut self,
        limits: Limits,
        replace_lead: Duration,
        passes: SchedulerConfig,
    ) -> Self {
        self.limits = limits;
        self.replace_lead = replace_lead;
        self.pacer = Pacer::new(passes);
        self
    }

    /// What to do with jobs Slurm holds after a failed launch.
    pub fn with_held_jobs(mut self, policy: crate::config::HeldJobs) -> Self {
        self.held_jobs = policy;
        self
    }

    /// Slurm's backend cannot release `jobs`: they are cancelled for
    /// replacements instead.
    pub fn release_refused(&mut self, jobs: &[JobRef], now: Instant) {
        for job in jobs {
            if let Some(r) = self.jobs.get_mut(job) {
                super::held::replace(r, now);
            }
        }
    }

    /// Whether a size was asked for since the pool started.
    pub fn sized(&self) -> bool {
        self.sized
    }

    /// The target, in jobs.
    pub fn target(&self) -> usize {
        self.target_jobs
    }

    /// Sets the target an adaptive pool decided on (a stop stays a stop,
    /// unlike `set_target`).
    pub fn adapt_target(&mut self, jobs: usize) {
        self.target_jobs = jobs;
    }

    /// Every job the books keep.
    pub fn jobs(&self) -> &BTreeMap<JobRef, JobRecord> {
        &self.jobs
    }

    /// How many of its jobs Slurm last listed running.
    pub fn running_jobs(&self) -> usize {
        let running = |r: &&JobRecord| r.state == crate::slurm::JobState::Running;
        self.jobs.values().filter(running).count()
    }

    /// Recent start-up failures, newest last.
    pub fn failures(&self) -> &VecDeque<StartupFailure> {
        &self.failures
    }

    /// A job submitted at or after `since` that ended OUT_OF_MEMORY, as
    /// Slurm's listing or its accounting says (`job_growth.rs`).
    pub fn out_of_memory_since(&self, since: Instant) -> Option<crate::slurm::JobRef> {
        self.jobs
            .values()
            .find(|r| r.state == crate::slurm::JobState::OutOfMemory && r.submitted_at >= since)
            .map(|r| r.job)
    }

    /// Start-up failures ever seen; waiters compare it with their start.
    pub fn failures_seen(&self) -> u64 {
        self.failures_seen
    }

    /// Jobs submitted so far.
    pub fn submitted_count(&self) -> u64 {
        self.submitted
    }

    /// Submissions Slurm refused for a limit so far.
    pub fn limit_refusals(&self) -> u64 {
        self.cap.refusals
    }

    /// The pool's phase, as its status reports it.
    pub fn phase(&self) -> PoolPhase {
        match (&self.course, &self.outage) {
            (Course::Closing { .. }, _) => PoolPhase::Closing,
            (_, Some(o)) => PoolPhase::SlurmUnreachable {
                since_ms: o.since_ms,
                error: o.error.clone(),
            },
            (Course::Stopped(cause), None) => PoolPhase::Stopped {
                cause: cause.clone(),
            },
            (Course::Running, None) => PoolPhase::Running,
        }
    }

    /// Why it stopped submitting, if it did.
    pub fn stopped(&self) -> Option<&StopCause> {
        match &self.course {
            Course::Stopped(cause) => Some(cause),
            _ => None,
        }
    }

    /// Why the last round submitted fewer jobs than needed.
    pub fn held_back(&self) -> Option<&Holdback> {
        self.held_back.as_ref()
    }

    /// The last error.
    pub fn last_error(&self) -> Option<&PoolError> {
        self.last_error.as_ref()
    }

    /// From now on the pool heads for no jobs and submits none; jobs
    /// still active at `deadline` are cancelled.
    pub fn begin_closing(&mut self, now: Instant, deadline: Instant) {
        if !matches!(self.course, Course::Closing { .. }) {
            self.course = Course::Closing {
                began: now,
                deadline,
            };
        }
        self.target_jobs = 0;
    }

    /// While closing, the pause before the loop's next round: short at
    /// first (retired workers' jobs end within a few hundred milliseconds,
    /// and a driver waits for `close`), then longer, up to half a second.
    pub fn closing_pause(&self, now: Instant) -> Option<Duration> {
        match self.course {
            Course::Closing { began, .. } => Some(
                (now.saturating_duration_since(began) / 4).clamp(CLOSE_POLL_FIRST, CLOSE_POLL_MAX),
            ),
            _ => None,
        }
    }

    /// The most tasks in one array.
    pub fn array_size(&self) -> usize {
        self.pacer.array_size()
    }

    /// Records what one round submitted, for the pacer.
    pub fn chunk_submitted(&mut self, jobs: Vec<JobRef>, now: Instant) {
        self.pacer.submitted(jobs, now);
    }

    /// Whether jobs wait for a pass of Slurm's: the pool looks again soon.
    pub fn pacing(&self) -> bool {
        self.pacer.pacing()
    }

    /// Takes in Slurm's listing of this cluster's jobs (`None` when there
    /// is none this round) and the scheduler's workers, and returns what to
    /// do now.
    pub fn reconcile(
        &mut self,
        listing: Option<&[JobInfo]>,
        workers: &[WorkerInfo],
        now: Instant,
    ) -> Plan {
        let mut plan = Plan::default();
        if let Some(listing) = listing {
            self.observe(listing, workers, now);
        }
        self.match_workers(workers, now);
        self.account_ends(&mut plan, now);
        plan.cancel.append(&mut self.asked_cancels);
        if self.outage.is_none() && !matches!(self.course, Course::Closing { .. }) {
            let held = super::held::decide(self.jobs.values_mut(), self.held_jobs, now);
            plan.release = held.release;
            plan.cancel.extend(held.cancel);
        }
        self.prune();
        let wanted = self.steer(&mut plan, now);
        let recent = self.recent_submissions(now);
        let gates = Gates {
            limits: &self.limits,
            pending: self
                .jobs
                .values()
                .filter(|r| r.state == JobState::Pending)
                .count(),
            recent,
            counting: self.jobs.values().filter(|r| r.counts()).count(),
        };
        let budget = budget(wanted, gates, &self.cap, &mut self.pacer, listing, now);
        self.log_limits(budget.held_back.as_ref());
        plan.submit = budget.count;
        self.held_back = budget.held_back;
        plan
    }

    /// Cancels and retires toward the target; returns the jobs wanted.
    /// Closing, without Slurm, stopped or backing off, that is none.
    pub(super) fn steer(&mut self, plan: &mut Plan, now: Instant) -> usize {
        if let Course::Closing { deadline, .. } = self.course {
            self.cancel_closing(plan, now, now >= deadline);
            return 0;
        }
        if self.outage.is_some() {
            // Without Slurm nothing can be submitted or cancelled, and a
            // job it does not show is not known to be gone.
            return 0;
        }
        self.cancel_broken(plan, now);
        self.cancel_again(plan, now);
        let counting = self.jobs.values().filter(|r| r.counts()).count();
        if counting > self.target_jobs {
            self.shrink(counting - self.target_jobs, now, plan);
            return 0;
        }
        match self.course == Course::Running && now >= self.next_submit_at {
            true => self.target_jobs - counting,
            false => 0,
        }
    }

    /// Jobs submitted in the last minute (for `max_submit_per_minute`).
    pub(super) fn recent_submissions(&mut self, now: Instant) -> usize {
        while self
            .recent_submits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent_submits.pop_front();
        }
        self.recent_submits.len()
    }

    /// Logs the site limits that hold submissions back, once while they hold.
    pub(super) fn log_limits(&mut self, held: Option<&Holdback>) {
        use crate::protocol::HoldReason::{PendingLimit, SubmitRate};
        let limits: Vec<_> = held
            .iter()
            .flat_map(|h| &h.reasons)
            .filter(|r| matches!(r, PendingLimit { .. } | SubmitRate { .. }))
            .cloned()
            .collect();
        if !limits.is_empty() && limits != self.limits_logged {
            if let Some(h) = held {
                tracing::info!("site limits hold submissions back: {h}");
            }
        }
        self.limits_logged = limits;
    }
}

#[cfg(test)]
mod tests;
