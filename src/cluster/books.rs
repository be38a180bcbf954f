//! The cluster's books: every job it submitted, what Slurm and the
//! scheduler last said of each, and the decision of what to do next. Pure
//! logic, no I/O, so it is tested without Slurm.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{budget, Gates};
use super::cap::SubmitCap;
use super::fates;
pub(crate) use super::job_record::{job_of, Action, EndLookup, JobRecord};
use super::pace::Pacer;
use super::Limits;
use crate::protocol::{
    unix_ms, Holdback, PoolError, PoolPhase, StartupFailure, StopCause, WorkerId, WorkerInfo,
    WorkerState,
};
use crate::slurm::{JobInfo, JobRef, JobState, SchedulerConfig, SlurmError};

/// What one reconcile round decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub submit: usize,
    pub cancel: Vec<JobRef>,
    pub retire: Vec<WorkerId>,
    /// Jobs that ended before registering, whose logs should be read.
    pub failed: Vec<JobRef>,
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

    /// Recent start-up failures, newest last.
    pub fn failures(&self) -> &VecDeque<StartupFailure> {
        &self.failures
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

    /// Notes an error that is no outage and no refusal (a failed listing
    /// or cancellation).
    pub fn note_error(&mut self, error: &SlurmError) {
        self.last_error = Some(PoolError::now(error));
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

    /// Slurm refused an array of `tasks` as too large (`arrays`), or for
    /// a limit: half as many are tried next.
    pub fn array_refused(&mut self, tasks: usize, arrays: bool, error: &SlurmError) {
        match arrays {
            true => self.pacer.array_refused(tasks),
            false => self.cap.halved(),
        }
        self.note_error(error);
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

    /// Notes that Slurm did not answer.
    pub fn slurm_unreachable(&mut self, error: &SlurmError) {
        let message = error.to_string();
        if self.outage.is_none() {
            tracing::warn!(error = %message, "Slurm is not answering: holding the pool as it is until it does");
        }
        let since_ms = self.outage.as_ref().map_or_else(unix_ms, |o| o.since_ms);
        self.outage = Some(Outage {
            since_ms,
            error: message,
        });
        self.last_error = Some(PoolError::now(error));
    }

    /// Notes that Slurm answered.
    pub fn slurm_answered(&mut self) {
        if let Some(o) = self.outage.take() {
            let secs = unix_ms().saturating_sub(o.since_ms) as f64 / 1000.0;
            tracing::info!(after_s = secs, "Slurm answers again");
        }
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
        self.account_ends(&mut plan);
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
    fn steer(&mut self, plan: &mut Plan, now: Instant) -> usize {
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

    /// Jobs whose workers the scheduler lost are broken: cancel them (they
    /// are replaced, as they no longer count) and keep new jobs off their node.
    fn cancel_broken(&mut self, plan: &mut Plan, now: Instant) {
        for r in self.jobs.values_mut() {
            let lost =
                !r.workers.is_empty() && r.workers.iter().all(|w| w.state == WorkerState::Lost);
            if r.state.is_active() && r.action.is_none() && lost {
                r.action = Some(Action::Cancelling);
                r.action_at = Some(now);
                plan.cancel.push(r.job);
                if let Some(node) = r
                    .node
                    .clone()
                    .or_else(|| r.workers.first().map(|w| w.hostname.clone()))
                {
                    self.suspect_nodes.insert(node, now);
                }
            }
        }
    }

    /// Closing: cancels the jobs without a live worker (pending, starting,
    /// lost), and `all` the rest (the deadline passed: their workers did
    /// not leave in time); those cancelled before are sent again later.
    fn cancel_closing(&mut self, plan: &mut Plan, now: Instant, all: bool) {
        for r in self.jobs.values_mut() {
            let unregistered = r.workers.iter().all(|w| w.state == WorkerState::Lost);
            let cancelled = r.action == Some(Action::Cancelling);
            if r.state.is_active() && !cancelled && (all || unregistered) {
                if all && !unregistered {
                    tracing::warn!(job = %r.job, "its workers did not leave in time: cancelling it");
                }
                r.action = Some(Action::Cancelling);
                r.action_at = Some(now);
                plan.cancel.push(r.job);
            }
        }
        self.cancel_again(plan, now);
    }

    /// Cancellations Slurm has not acted on are sent again.
    fn cancel_again(&mut self, plan: &mut Plan, now: Instant) {
        for r in self.jobs.values_mut() {
            if r.action == Some(Action::Cancelling)
                && r.state.is_active()
                && r.action_at
                    .is_some_and(|t| now.duration_since(t) > RECANCEL_AFTER)
                && !plan.cancel.contains(&r.job)
            {
                r.action_at = Some(now);
                plan.cancel.push(r.job);
            }
        }
    }

    /// Slurm would not take jobs kept off nodes: they go anywhere.
    pub fn forget_suspects(&mut self) {
        self.suspect_nodes.clear();
    }

    /// Nodes new jobs should keep off now: those that lost their workers
    /// lately and have not run a live worker since.
    pub fn excluded_nodes(&mut self, now: Instant) -> Vec<String> {
        self.suspect_nodes
            .retain(|_, since| now.duration_since(*since) < SUSPECT_FOR);
        self.suspect_nodes.keys().cloned().collect()
    }

    /// Jobs submitted in the last minute (for `max_submit_per_minute`).
    fn recent_submissions(&mut self, now: Instant) -> usize {
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
    fn log_limits(&mut self, held: Option<&Holdback>) {
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

    /// Forgets the oldest ended jobs beyond `KEEP_ENDED`.
    fn prune(&mut self) {
        let ended: Vec<JobRef> = self
            .jobs
            .values()
            .filter(|r| r.ended)
            .map(|r| r.job)
            .collect();
        if ended.len() > KEEP_ENDED {
            for job in &ended[..ended.len() - KEEP_ENDED] {
                self.jobs.remove(job);
            }
        }
    }

    /// Takes in what Slurm listed. A job it no longer lists is gone, unless
    /// one of its workers still heartbeats: then it runs, whatever Slurm
    /// (perhaps a controller that lost its state) says.
    fn observe(&mut self, listing: &[JobInfo], workers: &[WorkerInfo], now: Instant) {
        let expected = self
            .jobs
            .values()
            .filter(|r| matches!(r.job, JobRef::Job(_)) || r.state.is_active())
            .map(|r| r.job);
        let listing = super::listing::as_submitted(listing, expected);
        let mut seen = HashSet::new();
        for info in listing.iter() {
            seen.insert(info.job);
            let r = self
                .jobs
                .entry(info.job)
                .or_insert_with(|| JobRecord::new(info.job, now));
            r.state = info.state.clone();
            r.end = EndLookup::Listed;
            r.listed = true;
            r.reason = info.reason.clone();
            if info.job_id.is_some() {
                r.job_id = info.job_id;
            }
            if info.nodes.is_some() {
                r.node = info.nodes.clone();
            }
            r.exit_code = info.exit_code;
        }
        let heartbeating: HashSet<JobRef> = workers
            .iter()
            .filter(|w| w.state.is_live())
            .filter_map(job_of)
            .collect();
        for r in self.jobs.values_mut() {
            if !seen.contains(&r.job)
                && r.state.is_active()
                && !heartbeating.contains(&r.job)
                && (r.listed || now.duration_since(r.submitted_at) > self.vanish_grace)
            {
                // Ended and forgotten, or lost: accounting is asked how.
                r.state = JobState::Vanished;
                r.end = EndLookup::Asking { since: now };
            }
        }
    }

    /// The jobs whose end accounting should tell this round.
    pub fn ends_wanted(&self) -> Vec<JobRef> {
        self.jobs
            .values()
            .filter(|r| fates::wanted(r))
            .map(|r| r.job)
            .collect()
    }

    /// Takes accounting's answer for the jobs `ends_wanted` named; their
    /// ends are accounted for (a failure counted, say) in the next round.
    pub fn take_fates(&mut self, answer: fates::Answer<'_>, now: Instant) {
        for r in self.jobs.values_mut() {
            if let Some(line) = fates::take(r, answer, now) {
                tracing::info!("{line}");
            }
        }
    }

    fn match_workers(&mut self, workers: &[WorkerInfo], now: Instant) {
        for r in self.jobs.values_mut() {
            r.workers.clear();
        }
        for w in workers {
            let Some(key) = job_of(w) else { continue };
            if let Some(r) = self.jobs.get_mut(&key) {
                if !r.registered {
                    r.registered = true;
                    // A worker came up: whatever failed before was not a crash loop.
                    self.consecutive_failures = 0;
                    self.startup = Some(now.duration_since(r.submitted_at));
                    // ...and its node works again.
                    self.suspect_nodes.remove(&w.hostname);
                    if let Some(node) = &r.node {
                        self.suspect_nodes.remove(node);
                    }
                }
                r.workers.push(w.clone());
            }
        }
        self.mark_expiring();
    }

    /// Replaces a job early enough that its replacement has started by the
    /// time its workers leave for the time limit.
    fn mark_expiring(&mut self) {
        let lead = self.replace_lead + self.startup.unwrap_or_default();
        let horizon = unix_ms().saturating_add(u64::try_from(lead.as_millis()).unwrap_or(u64::MAX));
        for r in self.jobs.values_mut() {
            let live: Vec<&WorkerInfo> = r
                .workers
                .iter()
                .filter(|w| w.state != WorkerState::Exited)
                .collect();
            r.expiring = r.expiring
                || (!live.is_empty()
                    && live.iter().all(|w| {
                        w.state == WorkerState::Draining
                            || w.drain_at_ms.is_some_and(|t| t <= horizon)
                    }));
        }
    }

    fn account_ends(&mut self, plan: &mut Plan) {
        let before = plan.failed.len();
        for r in self.jobs.values_mut() {
            // A job whose end accounting is asked about waits for its answer.
            if r.ended || r.state.is_active() || fates::wanted(r) {
                continue;
            }
            r.ended = true;
            if r.action.is_some() || r.registered {
                continue; // removed by us, or a worker that served: replaced if needed
            }
            if r.state.ended_on_its_own() {
                self.consecutive_failures += 1;
                self.failures_seen += 1;
                plan.failed.push(r.job);
            }
        }
        if plan.failed.len() > before {
            self.after_failure();
        }
    }

    /// Backs off after a failure; stops submitting after too many in a row.
    fn after_failure(&mut self) {
        let exp = self.consecutive_failures.saturating_sub(1).min(16);
        let wait = self.backoff.saturating_mul(2u32.pow(exp)).min(MAX_BACKOFF);
        self.next_submit_at = self.next_submit_at.max(Instant::now() + wait);
        if self.consecutive_failures >= self.max_failures && self.course == Course::Running {
            self.course = Course::Stopped(StopCause::StartupFailures {
                in_a_row: self.consecutive_failures,
                last: None,
            });
            self.note_last_failure();
        }
    }

    /// Names the latest failure in the reason for stopping, once.
    fn note_last_failure(&mut self) {
        if let Course::Stopped(StopCause::StartupFailures {
            last: last @ None, ..
        }) = &mut self.course
        {
            *last = self.failures.back().cloned();
        }
    }

    /// Records the details of a start-up failure (its log tail read by the caller).
    pub fn record_failure(&mut self, failure: StartupFailure) {
        self.failures.push_back(failure);
        if self.failures.len() > KEEP_FAILURES {
            self.failures.pop_front();
        }
        if self.consecutive_failures >= self.max_failures {
            self.note_last_failure();
        }
    }

    /// A submission Slurm did not take. No answer is an outage; a limit
    /// (per-user job caps and the like) keeps the target and holds the
    /// pool at the jobs it has (see `cap`); any other refusal counts as a
    /// start-up failure.
    pub fn submit_failed(&mut self, error: &SlurmError) {
        if error.is_unreachable() {
            self.slurm_unreachable(error);
            return;
        }
        self.note_error(error);
        if error.is_transient() {
            let counting = self.jobs.values().filter(|r| r.counts()).count();
            let words = match error {
                SlurmError::Refused { message, .. } => message.replace('\n', " "),
                other => other.to_string(),
            };
            self.cap
                .refused(counting, words.trim(), self.backoff, Instant::now());
            return;
        }
        self.consecutive_failures += 1;
        self.failures_seen += 1;
        self.record_failure(StartupFailure::Refused {
            message: error.to_string(),
            must_change: crate::exit::ExitStatus::exit_code(error) == crate::exit::USAGE,
        });
        self.after_failure();
    }

    /// Removes `excess` jobs: pending ones first, then ones whose workers
    /// have not registered, then idle workers (longest idle first, retired
    /// gracefully, so their jobs end COMPLETED), busy ones last; newest
    /// first within each kind.
    fn shrink(&mut self, excess: usize, now: Instant, plan: &mut Plan) {
        let rank = |r: &JobRecord| match (&r.state, r.workers.is_empty()) {
            (JobState::Pending, true) => 0,
            (_, true) => 1,
            (_, false) if r.workers.iter().all(|w| w.running_tasks == 0) => 2,
            (_, false) => 3,
        };
        let idle_since = |r: &JobRecord| {
            r.workers
                .iter()
                .map(|w| w.idle_since_ms.unwrap_or(u64::MAX))
                .max()
                .unwrap_or(u64::MAX)
        };
        let mut candidates: Vec<&mut JobRecord> =
            self.jobs.values_mut().filter(|r| r.counts()).collect();
        candidates.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then(idle_since(a).cmp(&idle_since(b)))
                .then(b.submitted_at.cmp(&a.submitted_at))
                .then(b.job.cmp(&a.job))
        });
        for r in candidates.into_iter().take(excess) {
            r.action_at = Some(now);
            if r.workers.is_empty() {
                r.action = Some(Action::Cancelling);
                plan.cancel.push(r.job);
            } else {
                r.action = Some(Action::Retiring);
                plan.retire.extend(r.workers.iter().map(|w| w.id));
            }
        }
    }

    /// Since when its oldest job still waits in Slurm's queue (never
    /// registered, pending), if one does.
    pub fn pending_since(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter(|r| r.state == JobState::Pending && !r.registered && r.action.is_none())
            .map(|r| r.submitted_at)
            .min()
    }

    /// Jobs an adaptive pool may give up now: pending or unregistered ones,
    /// and those whose workers have all been idle since before `idle_before_ms`.
    pub fn removable_jobs(&self, idle_before_ms: u64) -> usize {
        self.jobs
            .values()
            .filter(|r| r.counts())
            .filter(|r| {
                r.workers.is_empty()
                    || r.workers.iter().all(|w| {
                        w.running_tasks == 0 && w.idle_since_ms.is_some_and(|t| t <= idle_before_ms)
                    })
            })
            .count()
    }

    /// Jobs Slurm may still run.
    pub fn active_jobs(&self) -> Vec<JobRef> {
        self.jobs
            .values()
            .filter(|r| r.state.is_active())
            .map(|r| r.job)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{HoldReason, SlurmPlacement};
    use crate::slurm::JobId;

    fn refusal(stderr: &str) -> SlurmError {
        SlurmError::failed("sbatch".into(), "exit status: 1".into(), stderr.into())
    }

    fn job(n: u64) -> JobRef {
        JobRef::Job(JobId::new(n))
    }

    fn info(n: u64, state: JobState) -> JobInfo {
        JobInfo {
            job: job(n),
            job_id: Some(JobId::new(n)),
            name: "w".into(),
            comment: String::new(),
            state,
            reason: None,
            nodes: None,
            exit_code: None,
        }
    }

    fn worker(id: u64, job: u64, state: WorkerState) -> WorkerInfo {
        WorkerInfo {
            id: WorkerId(id),
            name: job.to_string(),
            slurm: SlurmPlacement {
                job_id: Some(job),
                ..Default::default()
            },
            hostname: "n".into(),
            address: "a".into(),
            cores: 1,
            memory_bytes: 1,
            allocation_end: None,
            drain_at_ms: None,
            state,
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
            exit_reason: None,
            exited_at_ms: None,
            running_tasks: 0,
            idle_since_ms: Some(0),
            kind: Default::default(),
            dask_name: None,
            offer: Default::default(),
        }
    }

    fn books() -> Books {
        Books::new(3, Duration::ZERO, Duration::from_secs(5))
    }

    #[test]
    fn scale_up_submits_the_missing_jobs_once() {
        let mut s = books();
        s.target_jobs = 4;
        let now = Instant::now();
        assert_eq!(s.reconcile(Some(&[]), &[], now).submit, 4);
        s.submitted((1..=4).map(job), now);
        let listing: Vec<JobInfo> = (1..=4).map(|n| info(n, JobState::Pending)).collect();
        assert_eq!(s.reconcile(Some(&listing), &[], now).submit, 0);
    }

    #[test]
    fn an_array_listed_as_one_plain_record_keeps_its_tasks() {
        // As after a controller restart in CI: array 64's tasks, listed as
        // one pending record with the array's id and no task.
        let mut s = books();
        s.target_jobs = 4;
        let t0 = Instant::now();
        let tasks = (0..4).map(|task| JobRef::Task {
            array: JobId::new(64),
            task,
        });
        s.submitted(tasks, t0);
        let later = t0 + Duration::from_secs(60);
        let plan = s.reconcile(Some(&[info(64, JobState::Pending)]), &[], later);
        assert_eq!(plan, Plan::default(), "nothing submitted or cancelled");
        assert_eq!(s.jobs.len(), 4, "no job adopted: {:?}", s.jobs.keys());
        assert!(s.jobs.values().all(|r| r.state == JobState::Pending));
    }

    #[test]
    fn scale_down_cancels_pending_first_then_retires_registered() {
        let mut s = books();
        let t0 = Instant::now();
        s.submitted((1..=5).map(job), t0);
        s.target_jobs = 5;
        let mut listing: Vec<JobInfo> = (1..=3).map(|n| info(n, JobState::Running)).collect();
        listing.extend((4..=5).map(|n| info(n, JobState::Pending)));
        let workers: Vec<WorkerInfo> = (1..=3)
            .map(|n| worker(n, n, WorkerState::Running))
            .collect();
        assert_eq!(s.reconcile(Some(&listing), &workers, t0), Plan::default());
        s.target_jobs = 2;
        let plan = s.reconcile(Some(&listing), &workers, t0);
        assert_eq!(plan.cancel, vec![job(5), job(4)], "pending jobs go first");
        assert_eq!(plan.retire.len(), 1, "then one registered worker retires");
        assert_eq!(plan.submit, 0);
        // Nothing more while those act.
        let again = s.reconcile(Some(&listing), &workers, t0);
        assert!(again.cancel.is_empty() && again.retire.is_empty() && again.submit == 0);
    }

    #[test]
    fn failures_before_registering_back_off_and_stop_after_k() {
        let mut s = Books::new(2, Duration::from_millis(1), Duration::from_secs(5));
        s.target_jobs = 1;
        let now = Instant::now();
        s.submitted([job(1)], now);
        let mut failed = info(1, JobState::Failed);
        failed.exit_code = Some(1);
        let plan = s.reconcile(Some(&[failed.clone()]), &[], now);
        assert_eq!(plan.failed, vec![job(1)]);
        assert_eq!(s.consecutive_failures, 1);
        assert!(s.stopped().is_none());
        s.submitted([job(2)], now);
        let mut failed2 = info(2, JobState::Failed);
        failed2.exit_code = Some(1);
        let plan = s.reconcile(
            Some(&[failed, failed2]),
            &[],
            Instant::now() + Duration::from_secs(1),
        );
        assert_eq!(plan.failed, vec![job(2)]);
        assert!(matches!(
            s.phase(),
            PoolPhase::Stopped {
                cause: StopCause::StartupFailures { in_a_row: 2, .. }
            }
        ));
        assert_eq!(plan.submit, 0, "a crash loop stops submitting");
    }

    #[test]
    fn a_registration_resets_the_failure_count_and_external_cancels_are_replaced() {
        let mut s = books();
        s.target_jobs = 2;
        let now = Instant::now();
        s.submitted([job(1), job(2)], now);
        s.consecutive_failures = 2;
        let listing = [info(1, JobState::Running), info(2, JobState::Running)];
        let workers = [
            worker(1, 1, WorkerState::Running),
            worker(2, 2, WorkerState::Running),
        ];
        s.reconcile(Some(&listing), &workers, now);
        assert_eq!(s.consecutive_failures, 0);
        // Someone scancels job 2: it is replaced, and not counted as a failure.
        let listing = [info(1, JobState::Running), info(2, JobState::Cancelled)];
        let plan = s.reconcile(Some(&listing), &workers[..1], now);
        assert_eq!(plan.submit, 1);
        assert!(plan.failed.is_empty());
    }

    #[test]
    fn a_lost_worker_gets_its_job_cancelled_and_replaced() {
        let mut s = books();
        s.target_jobs = 1;
        let now = Instant::now();
        s.submitted([job(1)], now);
        let listing = [info(1, JobState::Running)];
        let plan = s.reconcile(Some(&listing), &[worker(1, 1, WorkerState::Lost)], now);
        assert_eq!(plan.cancel, vec![job(1)]);
        assert_eq!(plan.submit, 1);
    }

    #[test]
    fn limits_keep_the_target_and_hold_the_pool_at_the_cap() {
        let mut s = Books::new(3, Duration::from_secs(60), Duration::from_secs(5));
        s.target_jobs = 3;
        s.submit_failed(&refusal("sbatch: error: QOSMaxSubmitJobPerUserLimit"));
        assert_eq!(s.consecutive_failures, 0);
        assert!(s.stopped().is_none());
        let plan = s.reconcile(Some(&[]), &[], Instant::now());
        assert_eq!(plan.submit, 0, "waits");
        assert!(matches!(
            &s.held_back().unwrap().reasons[..],
            [HoldReason::SlurmCap { slurm, .. }] if slurm.contains("QOSMaxSubmitJobPerUserLimit")
        ));
        // After the wait, one job tries; once Slurm takes it, the rest go.
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(s.reconcile(Some(&[]), &[], later).submit, 1);
        s.submitted([job(1)], later);
        assert_eq!(
            s.reconcile(Some(&[info(1, JobState::Pending)]), &[], later)
                .submit,
            2
        );
        s.submit_failed(&refusal("sbatch: error: invalid partition specified: x"));
        assert_eq!(s.consecutive_failures, 1);
    }

    #[test]
    fn a_job_whose_workers_leave_soon_is_replaced_before_they_go() {
        let mut s = books();
        s.replace_lead = Duration::from_secs(20);
        s.target_jobs = 2;
        let t0 = Instant::now();
        s.submitted([job(1), job(2)], t0);
        let listing = [info(1, JobState::Running), info(2, JobState::Running)];
        let now_ms = crate::protocol::unix_ms();
        let mut far = worker(1, 1, WorkerState::Running);
        far.drain_at_ms = Some(now_ms + 3_600_000);
        let mut near = worker(2, 2, WorkerState::Running);
        near.drain_at_ms = Some(now_ms + 10_000);
        let plan = s.reconcile(Some(&listing), &[far.clone(), near.clone()], t0);
        assert_eq!(
            plan.submit, 1,
            "the job leaving within the lead is replaced"
        );
        assert!(plan.cancel.is_empty() && plan.retire.is_empty(), "{plan:?}");
        s.submitted([job(3)], t0);
        let mut listing3 = listing.to_vec();
        listing3.push(info(3, JobState::Pending));
        let plan = s.reconcile(Some(&listing3), &[far.clone(), near], t0);
        assert_eq!(
            plan,
            Plan::default(),
            "one replacement, and the old job is left to drain"
        );
        // A worker that drains on Slurm's signal is replaced too.
        let mut signalled = far;
        signalled.state = WorkerState::Draining;
        let plan = s.reconcile(Some(&listing3), &[signalled], t0);
        assert_eq!(plan.submit, 1);
    }

    #[test]
    fn site_limits_cap_pending_jobs_and_submissions_per_minute() {
        let mut s = books();
        s.limits = Limits {
            max_pending_jobs: Some(3),
            max_submit_per_minute: None,
        };
        s.target_jobs = 10;
        let t0 = Instant::now();
        assert_eq!(s.reconcile(Some(&[]), &[], t0).submit, 3);
        s.submitted((1..=3).map(job), t0);
        let mut listing: Vec<JobInfo> = (1..=3).map(|n| info(n, JobState::Pending)).collect();
        assert_eq!(s.reconcile(Some(&listing), &[], t0).submit, 0);
        assert_eq!(
            s.held_back().unwrap().reasons,
            [HoldReason::PendingLimit { pending: 3, max: 3 }]
        );
        listing[0].state = JobState::Running;
        assert_eq!(s.reconcile(Some(&listing), &[], t0).submit, 1);

        let mut s = books();
        s.limits = Limits {
            max_pending_jobs: None,
            max_submit_per_minute: Some(4),
        };
        s.target_jobs = 10;
        let t0 = Instant::now();
        assert_eq!(s.reconcile(Some(&[]), &[], t0).submit, 4);
        s.submitted((1..=4).map(job), t0);
        let listing: Vec<JobInfo> = (1..=4).map(|n| info(n, JobState::Running)).collect();
        assert_eq!(
            s.reconcile(Some(&listing), &[], t0 + Duration::from_secs(30))
                .submit,
            0
        );
        assert_eq!(
            s.reconcile(Some(&listing), &[], t0 + Duration::from_secs(61))
                .submit,
            4,
            "a minute later the rate allows more"
        );
    }

    #[test]
    fn a_job_of_several_workers_is_removable_only_when_all_are_idle() {
        let mut s = books();
        s.target_jobs = 1;
        let t0 = Instant::now();
        s.submitted([job(1)], t0);
        let listing = [info(1, JobState::Running)];
        let idle = worker(1, 1, WorkerState::Running);
        let mut busy = worker(2, 1, WorkerState::Running);
        busy.running_tasks = 1;
        busy.idle_since_ms = None;
        s.reconcile(Some(&listing), &[idle.clone(), busy], t0);
        assert_eq!(s.removable_jobs(1_000), 0, "one busy process keeps the job");
        let mut idle2 = worker(2, 1, WorkerState::Running);
        idle2.idle_since_ms = Some(500);
        s.reconcile(Some(&listing), &[idle, idle2], t0);
        assert_eq!(s.removable_jobs(1_000), 1);
        assert_eq!(s.removable_jobs(100), 0, "not idle long enough");
    }

    #[test]
    fn while_slurm_is_away_nothing_is_submitted_cancelled_or_taken_as_gone() {
        let mut s = books();
        s.target_jobs = 2;
        let t0 = Instant::now();
        s.submitted([job(1), job(2)], t0);
        let workers = [worker(1, 1, WorkerState::Running)];
        let listing = [info(1, JobState::Running), info(2, JobState::Pending)];
        s.reconcile(Some(&listing), &workers, t0);
        let down = SlurmError::Unreachable {
            command: "squeue --json".into(),
            message: "Unable to contact slurm controller (connect failure)".into(),
        };
        s.slurm_unreachable(&down);
        let later = t0 + Duration::from_secs(600);
        // The target goes up and a worker is lost: still nothing to do.
        s.target_jobs = 4;
        let lost = [worker(1, 1, WorkerState::Lost)];
        assert_eq!(s.reconcile(None, &lost, later), Plan::default());
        assert!(matches!(s.phase(), PoolPhase::SlurmUnreachable { .. }));
        // Slurm is back with job 1 but without job 2, whose worker heartbeats.
        s.slurm_answered();
        let workers2 = [
            worker(1, 1, WorkerState::Running),
            worker(2, 2, WorkerState::Running),
        ];
        let plan = s.reconcile(Some(&listing[..1]), &workers2, later);
        assert_eq!(
            s.jobs[&job(2)].state,
            JobState::Pending,
            "a heartbeating job is not gone"
        );
        assert_eq!(plan.submit, 2, "only what the new target needs");
        assert!(plan.cancel.is_empty());
        // A job that is neither listed nor heartbeating is.
        let plan = s.reconcile(Some(&listing[..1]), &workers2[..1], later);
        assert_eq!(s.jobs[&job(2)].state, JobState::Vanished);
        assert_eq!(plan.submit, 3);
        assert!(plan.failed.is_empty(), "a vanished job is no crash");
    }

    #[test]
    fn an_unreachable_controller_during_submission_is_an_outage_not_a_failure() {
        let mut s = books();
        s.target_jobs = 1;
        let down = refusal("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)");
        s.submit_failed(&down);
        assert_eq!(s.consecutive_failures, 0);
        assert!(s.failures.is_empty());
        assert!(s.outage.is_some());
        assert_eq!(s.reconcile(Some(&[]), &[], Instant::now()).submit, 0);
    }
}
