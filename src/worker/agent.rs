//! One worker's life, as a phase (registering, serving, draining) and the
//! events that move it: the scheduler's answers, task ends, signals, the
//! allocation's clock, the Dask worker it supervises. `next_event` only
//! waits for the next event; `handle` decides what it means.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use super::dask::DaskProcess;
use super::work::Work;
use super::{describe_exit, AgentError, AgentExit, Identity, Signal, FIRST_RETRY, MAX_RETRY};
use crate::client::{ClientError, SchedulerClient, Session};
use crate::config::WorkerKind;
use crate::protocol::{DeregisterRequest, Instruction, RegisterResponse, WorkerId};

/// One worker agent.
pub(super) struct Agent {
    /// Its scheduler, followed through the scheduler file should it move
    /// (restarted elsewhere from its journal).
    pub client: SchedulerClient,
    pub me: Identity,
    /// How long the scheduler may be unreachable before the agent leaves.
    pub death: Duration,
    /// How long before the time limit it leaves.
    pub margin: Duration,
    /// Where task logs go.
    pub task_logs: Option<Arc<crate::private_fs::PrivateDir>>,
    /// What it runs.
    pub kind: WorkerKind,
    /// The job's Dask worker process, for `dask` jobs.
    pub dask: Option<Arc<DaskProcess>>,
}

/// Where an agent is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Not (yet, or no longer) known to the scheduler.
    Registering,
    /// Registered: heartbeating and taking tasks.
    Serving,
    /// Taking no more tasks; it leaves, for this reason, once those running end.
    Draining(AgentExit),
}

/// The agent's connection to its scheduler.
struct Link {
    /// Its id and heartbeat interval, once registered.
    id: Option<(WorkerId, Duration)>,
    /// Since when the scheduler has not answered.
    unreachable_since: Option<Instant>,
    /// The next wait after a failed request (doubling).
    retry: Duration,
    /// How long to wait before the next request.
    pause: Duration,
    /// The open session, once registered (`protocol::session`).
    session: Option<Session>,
    /// When the next heartbeat is due on it.
    beat_at: Instant,
    /// Whether the last heartbeat said the worker drains.
    sent_draining: bool,
}

/// What the scheduler said.
enum Answer {
    Registered(RegisterResponse),
    Told(Instruction),
}

/// What happened.
enum Event {
    Answer(Result<Answer, ClientError>),
    /// A task ended (only listened for while draining).
    TaskEnded,
    Signal(Signal),
    /// The walltime margin begins: take no more tasks.
    DrainTime,
    /// The allocation is about to end: hand back what still runs.
    HandBackTime,
    /// The supervised Dask worker ended by itself, with this status.
    DaskEnded(String),
}

/// What the loop does next.
enum Next {
    /// Wait for the next event.
    Go,
    /// Deliver the reports still owed, deregister, exit.
    Leave(AgentExit),
    /// Kill the tasks still running (they go back to the queue), then leave.
    Stop(AgentExit),
    /// The scheduler is gone: kill the tasks and exit without a word.
    Abort(AgentExit),
    /// The scheduler refused this worker.
    Refused(AgentError),
}

/// The signals an agent listens for.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Term,
            _ = self.int.recv() => Signal::Int,
            _ = self.usr1.recv() => Signal::Usr1,
        }
    }
}

/// The allocation's clock: when to stop taking tasks, and when to hand
/// back those still running so the job ends before Slurm kills it.
struct Clock {
    drain_at: Option<Instant>,
    hand_back_at: Option<Instant>,
}

impl Clock {
    fn new(me: &Identity, margin: Duration) -> Clock {
        let at = |ms: u64| {
            Instant::now() + Duration::from_millis(ms.saturating_sub(crate::protocol::unix_ms()))
        };
        let drain_at = me.drain_at_ms.map(at);
        let hand_back_at = match (drain_at, me.allocation_end) {
            (Some(_), Some(end)) => {
                let before = (margin / 3).max(Duration::from_secs(1)).min(margin);
                let before_ms = u64::try_from(before.as_millis()).unwrap_or(u64::MAX);
                Some(at(end.saturating_mul(1000).saturating_sub(before_ms)))
            }
            _ => None,
        };
        Clock {
            drain_at,
            hand_back_at,
        }
    }
}

/// Resolves at `t`; never without one.
async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the supervised Dask worker ends; never without one.
async fn dask_ended(process: Option<&DaskProcess>) -> String {
    match process {
        Some(p) => p.ended().await,
        None => std::future::pending().await,
    }
}

impl Agent {
    /// Lives until there is a reason to exit.
    pub async fn run(self) -> Result<AgentExit, AgentError> {
        let mut signals = Signals::install().map_err(AgentError::Signals)?;
        tracing::info!("drover {}", self.me.describe());
        tracing::info!(scheduler = %self.client.url(), "registering");
        let clock = Clock::new(&self.me, self.margin);
        let gpus = self.me.offer.gpus.clone();
        let mut work = Work::new(self.client.clone(), self.death, gpus);
        let mut phase = Phase::Registering;
        let mut link = Link {
            id: None,
            unreachable_since: Some(Instant::now()),
            retry: FIRST_RETRY,
            pause: Duration::ZERO,
            session: None,
            beat_at: Instant::now(),
            sent_draining: false,
        };
        loop {
            let next = match &phase {
                Phase::Draining(exit) if work.running() == 0 => Next::Leave(exit.clone()),
                _ => {
                    let event = self
                        .next_event(&phase, &mut link, &mut work, &mut signals, &clock)
                        .await;
                    self.handle(event, &mut phase, &mut link, &mut work, &clock)
                }
            };
            match next {
                Next::Go => {}
                Next::Leave(exit) => {
                    work.flush().await;
                    return Ok(self.leave(&link, exit).await);
                }
                Next::Stop(exit) => {
                    work.stop().await;
                    return Ok(self.leave(&link, exit).await);
                }
                Next::Abort(exit) => {
                    work.abandon();
                    self.log_exit(&exit);
                    return Ok(exit);
                }
                Next::Refused(e) => return Err(e),
            }
        }
    }

    /// Waits for what happens next.
    async fn next_event(
        &self,
        phase: &Phase,
        link: &mut Link,
        work: &mut Work,
        signals: &mut Signals,
        clock: &Clock,
    ) -> Event {
        let draining = matches!(phase, Phase::Draining(_));
        let finished = work.finished.clone();
        let holding = work.held();
        tokio::select! {
            answer = self.request(link, draining, holding) => Event::Answer(answer),
            _ = finished.notified(), if draining => Event::TaskEnded,
            s = signals.recv() => Event::Signal(s),
            _ = until(clock.drain_at), if !draining => Event::DrainTime,
            _ = until(clock.hand_back_at) => Event::HandBackTime,
            status = dask_ended(self.dask.as_deref()) => Event::DaskEnded(status),
        }
    }

    /// The next answer: to a registration, or on the session (opened
    /// first when there is none), which is sent a heartbeat when one is
    /// due and at once when the worker starts to drain.
    async fn request(
        &self,
        link: &mut Link,
        draining: bool,
        holding: Vec<crate::protocol::TaskRun>,
    ) -> Result<Answer, ClientError> {
        let Some((id, interval)) = link.id else {
            tokio::time::sleep(link.pause).await;
            return self
                .client
                .register(&self.me.register_request(self.kind))
                .await
                .map(Answer::Registered);
        };
        if link.session.is_none() {
            tokio::time::sleep(link.pause).await;
            link.session = Some(self.client.open_session(id).await?);
            link.beat_at = Instant::now();
        }
        let session = link.session.as_mut().expect("opened above");
        loop {
            if draining != link.sent_draining {
                link.beat_at = Instant::now();
            }
            tokio::select! {
                told = session.next() => return told.map(Answer::Told),
                () = tokio::time::sleep_until(link.beat_at) => {
                    session.heartbeat(draining, holding.clone());
                    link.sent_draining = draining;
                    link.beat_at = Instant::now() + interval;
                }
            }
        }
    }

    /// Decides what an event means.
    fn handle(
        &self,
        event: Event,
        phase: &mut Phase,
        link: &mut Link,
        work: &mut Work,
        clock: &Clock,
    ) -> Next {
        match event {
            Event::Answer(Ok(Answer::Registered(r))) => {
                let interval = Duration::from_millis(r.heartbeat_interval_ms);
                tracing::info!(
                    worker = %r.worker_id,
                    scheduler = %self.client.url(),
                    heartbeat_ms = r.heartbeat_interval_ms,
                    "registered"
                );
                link.id = Some((r.worker_id, interval));
                link.answered();
                if *phase == Phase::Registering {
                    *phase = Phase::Serving;
                }
                Next::Go
            }
            Event::Answer(Ok(Answer::Told(i))) => {
                link.answered();
                self.obey(i, phase, link, work)
            }
            Event::Answer(Err(e)) => {
                // Whatever failed, the next answer comes on a new session.
                link.session = None;
                self.failed(e, phase, link, work)
            }
            Event::TaskEnded => Next::Go,
            Event::Signal(s @ (Signal::Term | Signal::Int)) => Next::Stop(AgentExit::Signalled(s)),
            Event::Signal(Signal::Usr1) => {
                // Slurm's walltime warning comes up to a minute before the
                // time asked for: a worker that knows its end keeps to its
                // own plan, which its replacement is timed by.
                match clock.drain_at.filter(|at| *at > Instant::now()) {
                    Some(at) => tracing::info!(
                        drain_in_s = (at - Instant::now()).as_secs(),
                        "SIGUSR1: Slurm's walltime warning; leaving as planned"
                    ),
                    None => drain(
                        phase,
                        work,
                        AgentExit::Signalled(Signal::Usr1),
                        "SIGUSR1: allocation ending",
                    ),
                }
                Next::Go
            }
            Event::DrainTime => {
                drain(phase, work, AgentExit::Walltime, "allocation ends soon");
                Next::Go
            }
            Event::HandBackTime => {
                tracing::info!(
                    running = work.running(),
                    "allocation ends: handing back the tasks still running"
                );
                Next::Stop(AgentExit::Walltime)
            }
            Event::DaskEnded(status) => {
                tracing::warn!(%status, "the Dask worker process ended by itself");
                Next::Leave(AgentExit::DaskExited(status))
            }
        }
    }

    /// Follows an instruction.
    fn obey(&self, told: Instruction, phase: &mut Phase, link: &mut Link, work: &mut Work) -> Next {
        match told {
            Instruction::Continue { next_poll_ms } => {
                link.pause = Duration::from_millis(next_poll_ms);
            }
            Instruction::Run { tasks } => {
                if let Some((id, _)) = link.id {
                    work.start(id, tasks, self.task_logs.clone());
                }
            }
            Instruction::Cancel { runs } => work.cancel(&runs),
            Instruction::Retire { reason, abandon } => {
                if abandon {
                    work.abandon();
                }
                if work.running() == 0 {
                    return Next::Leave(AgentExit::Retired(reason));
                }
                if !matches!(phase, Phase::Draining(_)) {
                    tracing::info!(running = work.running(), %reason, "retiring once the running tasks end");
                    *phase = Phase::Draining(AgentExit::Retired(reason));
                }
            }
        }
        Next::Go
    }

    /// Decides what a failed request means.
    fn failed(&self, e: ClientError, phase: &mut Phase, link: &mut Link, work: &mut Work) -> Next {
        match e {
            ClientError::UnknownWorker(id) => {
                tracing::warn!(worker = %id, "the scheduler no longer knows this worker; registering again");
                link.id = None;
                if *phase == Phase::Serving {
                    *phase = Phase::Registering;
                }
                Next::Go
            }
            e @ (ClientError::Unauthorized { .. } | ClientError::WrongCertificate { .. }) => {
                tracing::error!("{e}; exiting");
                work.abandon();
                Next::Refused(AgentError::Rejected(e))
            }
            e => {
                let since = *link.unreachable_since.get_or_insert_with(Instant::now);
                let gone = since.elapsed();
                if gone >= self.death {
                    return Next::Abort(AgentExit::SchedulerGone(gone));
                }
                tracing::debug!(error = %e, "scheduler unreachable; retrying");
                link.pause = spread(link.retry).min(self.death - gone);
                link.retry = (link.retry * 2).min(MAX_RETRY);
                Next::Go
            }
        }
    }

    /// Deregisters (when registered) with the reason, and logs the exit. A
    /// Dask worker leaving on purpose is first retired through Dask, so the
    /// results it holds move to the workers that stay.
    async fn leave(&self, link: &Link, exit: AgentExit) -> AgentExit {
        if let (Some(process), Some(name), true) =
            (&self.dask, &self.me.dask_name, exit.is_graceful())
        {
            process.retire(name, self.death).await;
        }
        if let Some(process) = &self.dask {
            process.mark_leaving();
        }
        if let Some((id, _)) = link.id {
            let farewell = DeregisterRequest {
                reason: describe_exit(&exit),
                departure: exit.departure(),
            };
            if let Err(e) = self.client.deregister(id, &farewell).await {
                tracing::warn!(error = %e, "could not deregister");
            }
        }
        self.log_exit(&exit);
        exit
    }

    fn log_exit(&self, exit: &AgentExit) {
        tracing::info!(worker = %self.me.name, "exiting: {}", describe_exit(exit));
    }
}

impl Link {
    /// The scheduler answered: no more backing off.
    fn answered(&mut self) {
        self.unreachable_since = None;
        self.retry = FIRST_RETRY;
        self.pause = Duration::ZERO;
    }
}

/// `pause` lengthened by up to a half, at random: the workers of a large
/// pool that lost their scheduler at the same instant (a restart) then
/// come back spread out, not in waves.
fn spread(pause: Duration) -> Duration {
    let mut bytes = [0u8; 2];
    if getrandom::fill(&mut bytes).is_err() {
        return pause;
    }
    let share = u32::from(u16::from_le_bytes(bytes));
    pause + pause * share / u32::from(u16::MAX) / 2
}

/// Stops taking tasks, to leave for `why` once the running ones end.
fn drain(phase: &mut Phase, work: &mut Work, why: AgentExit, what: &str) {
    if matches!(phase, Phase::Draining(_)) {
        return;
    }
    tracing::info!(running = work.running(), "{what}: taking no more tasks");
    *phase = Phase::Draining(why);
}
