//! The worker agent, `drover worker`, that runs inside each Slurm job: it
//! registers with the scheduler, heartbeats by long-polling (so compute
//! nodes need no inbound port), and exits by itself when told to retire,
//! on a signal, or when the scheduler has been unreachable for its death
//! timeout, so that no allocation is left burning.

mod dask;
mod identity;

pub use identity::Identity;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::{ClientError, SchedulerClient};
use crate::config::{Memory, Timeout, WorkerKind};
use crate::net::NetError;
use crate::protocol::{Instruction, SchedulerFile, SchedulerFileError, WorkerId};
use crate::tasks::{runner, Assignment, Completion};

/// What a worker job tells its agent.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The scheduler file of the cluster to join.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    pub scheduler_file: Option<PathBuf>,
    /// Worker name (default: the Slurm job id, or host-pid outside Slurm).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Cores for this job's workers (default: Slurm's allocation, else this machine's).
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,
    /// Memory for this job's workers (default: Slurm's allocation, else this machine's).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<Memory>,
    /// Worker processes in this job; cores and memory are split between them.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub processes: u32,
    /// How long to keep trying an unreachable scheduler before exiting.
    #[arg(long, value_name = "TIME", default_value = "60")]
    pub death_timeout: Timeout,
    /// How long before the allocation's time limit to stop taking tasks and leave (0: never).
    #[arg(long, value_name = "TIME", default_value = "60")]
    pub walltime_margin: Timeout,
    /// Up to how much earlier still to leave, spread by job id.
    #[arg(long, value_name = "TIME", default_value = "0")]
    pub walltime_stagger: Timeout,
    /// Interface whose address the worker registers with, e.g. ib0.
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Scratch directory.
    #[arg(long, value_name = "DIR")]
    pub local_directory: Option<PathBuf>,
    /// What this job runs: drover tasks (`native`) or a real Dask worker (`dask`).
    #[arg(long, value_name = "KIND", default_value = "native")]
    pub kind: WorkerKind,
    /// The Python whose `distributed` runs the Dask worker (`--kind dask`).
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub python: PathBuf,
    /// Further arguments: for `--kind dask`, passed on to `dask worker`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

/// Why an agent could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No scheduler was named.
    #[error("no scheduler to join: pass --scheduler-file FILE or set DROVER_SCHEDULER_FILE")]
    NoScheduler,
    /// The scheduler file is missing or broken.
    #[error(transparent)]
    SchedulerFile(#[from] SchedulerFileError),
    /// The interface cannot be used.
    #[error(transparent)]
    Interface(#[from] NetError),
    /// The scheduler refused this worker.
    #[error("{0}")]
    Rejected(ClientError),
    /// `--processes` is zero.
    #[error("invalid value `0` for --processes: it must be at least 1")]
    NoProcesses,
    /// A `dask` worker has no Dask scheduler to join.
    #[error("--kind dask: the scheduler file {} names no Dask scheduler (start the pool with --kind dask)", .0.display())]
    NoDaskScheduler(PathBuf),
    /// The Dask worker process could not start.
    #[error("cannot start the Dask worker with {}: {cause} (pass --python PATH to a Python with dask and distributed)", .python.display())]
    DaskSpawn {
        /// The Python.
        python: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// The scheduler asked it to retire.
    Retired(String),
    /// A signal told it to stop (SIGTERM, SIGINT) or drain (SIGUSR1).
    Signalled(&'static str),
    /// The scheduler was unreachable for the whole death timeout.
    SchedulerGone(Duration),
    /// It left before its allocation's time limit.
    Walltime,
    /// The Dask worker process it supervises ended by itself.
    DaskExited(String),
}

impl AgentExit {
    /// The process exit status for this ending: success unless the
    /// scheduler vanished.
    pub fn code(&self) -> u8 {
        match self {
            AgentExit::SchedulerGone(_) | AgentExit::DaskExited(_) => 1,
            _ => 0,
        }
    }
}

/// Runs the agent(s) of one job to the end; the first error wins.
pub async fn run(args: WorkerArgs) -> Result<Vec<AgentExit>, AgentError> {
    if args.processes == 0 {
        return Err(AgentError::NoProcesses);
    }
    if !args.extra.is_empty() && args.kind == WorkerKind::Native {
        tracing::warn!(args = ?args.extra, "native workers take no extra arguments; ignoring them");
    }
    let path = args.scheduler_file.clone().ok_or(AgentError::NoScheduler)?;
    let file = SchedulerFile::read(&path)?;
    let client = SchedulerClient::from_file(&file);
    let identity = Identity::detect(&args, client.url()).await?;
    let dask = match args.kind {
        WorkerKind::Native => None,
        WorkerKind::Dask => {
            let endpoint = file
                .dask
                .clone()
                .ok_or_else(|| AgentError::NoDaskScheduler(path.clone()))?;
            let share = identity.share(0, args.processes);
            let command = crate::dask::DaskWorkerCommand {
                python: args.python.clone(),
                scheduler: endpoint.address.clone(),
                nthreads: share.cores,
                nworkers: args.processes,
                memory_limit: share.memory.bytes(),
                name: crate::dask::dask_name(&identity.name),
                death_timeout: args.death_timeout.duration(),
                interface: args.interface.clone(),
                local_directory: args.local_directory.clone(),
                extra: args.extra.clone(),
            };
            let process = dask::DaskProcess::start(&command, &endpoint).map_err(|cause| {
                AgentError::DaskSpawn {
                    python: args.python.clone(),
                    cause,
                }
            })?;
            Some(Arc::new(process))
        }
    };
    let death = args.death_timeout.duration();
    let margin = args.walltime_margin.duration();
    let task_logs = args
        .local_directory
        .clone()
        .or_else(|| path.parent().map(|p| p.join("drover-tasks")));
    if let Some(dir) = &task_logs {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the task log directory");
        }
    }
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..args.processes {
        let agent = Agent {
            client: client.clone(),
            me: identity.share(i, args.processes),
            death,
            margin,
            task_logs: task_logs.clone(),
            kind: args.kind,
            dask: dask.clone(),
        };
        agents.spawn(agent.run());
    }
    let mut exits = Vec::new();
    let mut failed = None;
    while let Some(done) = agents.join_next().await {
        match done.expect("a worker agent task does not panic") {
            Ok(exit) => exits.push(exit),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(process) = &dask {
        process.stop().await;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(exits),
    }
}

/// One worker's life.
struct Agent {
    client: SchedulerClient,
    me: Identity,
    death: Duration,
    /// How long before the time limit it leaves.
    margin: Duration,
    /// Where task logs go.
    task_logs: Option<PathBuf>,
    /// What it runs.
    kind: WorkerKind,
    /// The job's Dask worker process, for `dask` jobs.
    dask: Option<Arc<dask::DaskProcess>>,
}

/// Backoff between attempts to reach the scheduler.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// The tasks a worker runs, and the reports it owes the scheduler.
struct Work {
    runners: tokio::task::JoinSet<()>,
    reports: tokio::sync::mpsc::UnboundedSender<(WorkerId, Completion)>,
    /// Reports sent to the reporter and not yet delivered.
    unreported: Arc<AtomicUsize>,
    /// Notified whenever a task ends.
    finished: Arc<Notify>,
    /// Set when the agent itself is being stopped.
    terminating: Arc<AtomicBool>,
}

/// How long a task killed by a signal waits before it is reported, to tell
/// a job being cancelled (the agent gets the signal too, and its tasks go
/// back to the queue) from a task killed on its own (reported as failed).
const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// Delivers task reports, retrying while the scheduler is briefly away.
async fn report(client: &SchedulerClient, id: WorkerId, batch: &[Completion], death: Duration) {
    let start = Instant::now();
    let mut retry = FIRST_RETRY;
    loop {
        match client.done(id, batch).await {
            Ok(()) => return,
            Err(e) if e.is_transient() && start.elapsed() < death => {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
            Err(e) => {
                tracing::warn!(tasks = batch.len(), error = %e, "could not report tasks");
                return;
            }
        }
    }
}

impl Work {
    fn new(client: SchedulerClient, death: Duration) -> Work {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(WorkerId, Completion)>();
        let unreported = Arc::new(AtomicUsize::new(0));
        let pending = unreported.clone();
        tokio::spawn(async move {
            while let Some((id, first)) = rx.recv().await {
                // Everything that ended meanwhile goes in the same report.
                let mut batch = vec![first];
                while let Ok((other, done)) = rx.try_recv() {
                    if other == id {
                        batch.push(done);
                    } else {
                        report(&client, other, &[done], death).await;
                        pending.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                report(&client, id, &batch, death).await;
                pending.fetch_sub(batch.len(), Ordering::SeqCst);
            }
        });
        Work {
            runners: tokio::task::JoinSet::new(),
            reports: tx,
            unreported,
            finished: Arc::new(Notify::new()),
            terminating: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts the tasks the scheduler sent.
    fn start(&mut self, worker: WorkerId, tasks: Vec<Assignment>, logs: Option<PathBuf>) {
        for a in tasks {
            let reports = self.reports.clone();
            let unreported = self.unreported.clone();
            let finished = self.finished.clone();
            let terminating = self.terminating.clone();
            let logs = logs.clone();
            tracing::debug!(task = %a.task, attempt = a.attempt, argv = ?a.argv, "running task");
            self.runners.spawn(async move {
                let output = runner::run(&a, logs.as_deref()).await;
                if output.exit_code.is_none() {
                    tokio::time::sleep(SIGNAL_GRACE).await;
                    if terminating.load(Ordering::SeqCst) {
                        return; // the job is going: the scheduler requeues the task
                    }
                }
                unreported.fetch_add(1, Ordering::SeqCst);
                let done = Completion {
                    task: a.task,
                    attempt: a.attempt,
                    output,
                };
                if reports.send((worker, done)).is_err() {
                    unreported.fetch_sub(1, Ordering::SeqCst);
                }
                finished.notify_one();
            });
        }
    }

    /// How many tasks still run.
    fn running(&mut self) -> usize {
        while self.runners.try_join_next().is_some() {}
        self.runners.len()
    }

    /// Stops for good: kills the tasks still running and waits until they
    /// are gone, then delivers the reports of those that ended first, so
    /// that the scheduler requeues exactly the tasks that did not finish.
    async fn stop(&mut self) {
        self.terminating.store(true, Ordering::SeqCst);
        self.runners.abort_all();
        while self.runners.join_next().await.is_some() {}
        self.flush().await;
    }

    /// Waits (bounded) until every finished task has been reported.
    async fn flush(&self) {
        let start = Instant::now();
        while self.unreported.load(Ordering::SeqCst) > 0
            && start.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Agent {
    async fn run(self) -> Result<AgentExit, AgentError> {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler installs");
        tracing::info!("drover {}", self.me.describe());
        tracing::info!(scheduler = %self.client.url(), "registering");

        let mut work = Work::new(self.client.clone(), self.death);
        let mut registered: Option<(WorkerId, Duration)> = None;
        let mut pause = Duration::ZERO;
        let mut unreachable_since: Option<Instant> = Some(Instant::now());
        let mut retry = FIRST_RETRY;
        // Set once the worker takes no more tasks: why it will leave.
        let mut draining: Option<AgentExit> = None;
        // Before the time limit: stop taking tasks at `drain_at`, and at
        // `hand_back_at` stop the tasks still running (the scheduler gives
        // them to other workers) so the job ends before Slurm kills it.
        let at = |ms: u64| {
            tokio::time::Instant::now()
                + Duration::from_millis(ms.saturating_sub(crate::protocol::unix_ms()))
        };
        let drain_at = self.me.drain_at_ms.map(at);
        let hand_back_at = match (drain_at, self.me.allocation_end) {
            (Some(_), Some(end)) => {
                let before = (self.margin / 3)
                    .max(Duration::from_secs(1))
                    .min(self.margin);
                Some(at((end * 1000).saturating_sub(before.as_millis() as u64)))
            }
            _ => None,
        };
        let until = |t: Option<tokio::time::Instant>| async move {
            match t {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        loop {
            if let Some(exit) = &draining {
                if work.running() == 0 {
                    work.flush().await;
                    return Ok(self.leave(registered, exit.clone()).await);
                }
            }
            let finished = work.finished.clone();
            let is_draining = draining.is_some();
            let step = async {
                match registered {
                    None => self
                        .client
                        .register(&self.me.register_request(self.kind))
                        .await
                        .map(|r| {
                            Step::Registered(
                                r.worker_id,
                                Duration::from_millis(r.heartbeat_interval_ms),
                            )
                        }),
                    Some((id, interval)) => {
                        tokio::time::sleep(pause).await;
                        self.client
                            .poll_draining(id, interval, is_draining)
                            .await
                            .map(Step::Told)
                    }
                }
            };
            let result = tokio::select! {
                r = step => r,
                // While draining, a task's end may be the last one.
                _ = finished.notified(), if is_draining => continue,
                _ = term.recv() => {
                    work.stop().await;
                    return Ok(self.leave(registered, AgentExit::Signalled("SIGTERM")).await);
                }
                _ = int.recv() => {
                    work.stop().await;
                    return Ok(self.leave(registered, AgentExit::Signalled("SIGINT")).await);
                }
                _ = until(drain_at), if draining.is_none() => {
                    tracing::info!(running = work.running(), "allocation ends soon: taking no more tasks");
                    draining = Some(AgentExit::Walltime);
                    continue;
                }
                _ = until(hand_back_at) => {
                    tracing::info!(running = work.running(), "allocation ends: handing back the tasks still running");
                    work.stop().await;
                    return Ok(self.leave(registered, AgentExit::Walltime).await);
                }
                status = dask_ended(self.dask.as_deref()) => {
                    tracing::warn!(%status, "the Dask worker process ended by itself");
                    return Ok(self.leave(registered, AgentExit::DaskExited(status)).await);
                }
                _ = usr1.recv() => {
                    // Slurm's walltime warning comes up to a minute before
                    // the time asked for: a worker that knows its end keeps
                    // to its own plan, which its replacement is timed by.
                    match drain_at {
                        Some(at) if at > tokio::time::Instant::now() => tracing::info!(
                            drain_in_s = (at - tokio::time::Instant::now()).as_secs(),
                            "SIGUSR1: Slurm's walltime warning; leaving as planned"
                        ),
                        _ => {
                            tracing::info!(running = work.running(), "SIGUSR1: allocation ending; taking no more tasks");
                            draining = Some(AgentExit::Signalled("SIGUSR1"));
                        }
                    }
                    continue;
                }
            };
            match result {
                Ok(Step::Registered(id, interval)) => {
                    tracing::info!(
                        worker = %id,
                        scheduler = %self.client.url(),
                        heartbeat_ms = interval.as_millis() as u64,
                        "registered"
                    );
                    registered = Some((id, interval));
                    pause = Duration::ZERO;
                    unreachable_since = None;
                    retry = FIRST_RETRY;
                }
                Ok(Step::Told(told)) => {
                    unreachable_since = None;
                    retry = FIRST_RETRY;
                    pause = Duration::ZERO;
                    match told {
                        Instruction::Continue { next_poll_ms } => {
                            pause = Duration::from_millis(next_poll_ms);
                        }
                        Instruction::Run { tasks } => {
                            let id = registered.map(|r| r.0).expect("polling means registered");
                            work.start(id, tasks, self.task_logs.clone());
                        }
                        Instruction::Retire { reason, abandon } => {
                            if abandon {
                                work.runners.abort_all();
                            }
                            if work.running() == 0 {
                                work.flush().await;
                                return Ok(self
                                    .leave(registered, AgentExit::Retired(reason))
                                    .await);
                            }
                            if draining.is_none() {
                                tracing::info!(running = work.running(), %reason, "retiring once the running tasks end");
                                draining = Some(AgentExit::Retired(reason));
                            }
                            // Keep heartbeating while the tasks finish.
                            pause = registered.map(|r| r.1).unwrap_or_default();
                        }
                    }
                }
                Err(ClientError::UnknownWorker(id)) => {
                    tracing::warn!(worker = %id, "the scheduler no longer knows this worker; registering again");
                    registered = None;
                }
                Err(e @ ClientError::Unauthorized { .. }) => {
                    tracing::error!("{e}; exiting");
                    return Err(AgentError::Rejected(e));
                }
                Err(e) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    let gone = since.elapsed();
                    if gone >= self.death {
                        work.runners.abort_all();
                        let exit = AgentExit::SchedulerGone(gone);
                        self.log_exit(&exit);
                        return Ok(exit);
                    }
                    tracing::debug!(error = %e, "scheduler unreachable; retrying");
                    pause = Duration::ZERO;
                    tokio::time::sleep(retry.min(self.death - gone)).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// Deregisters (when registered) with the reason, and logs the exit. A
    /// Dask worker leaving on purpose is first retired through Dask, so the
    /// results it holds move to the workers that stay.
    async fn leave(&self, registered: Option<(WorkerId, Duration)>, exit: AgentExit) -> AgentExit {
        let graceful = matches!(
            exit,
            AgentExit::Retired(_) | AgentExit::Walltime | AgentExit::Signalled("SIGUSR1")
        );
        if let (Some(process), true) = (&self.dask, graceful) {
            process
                .retire(&crate::dask::dask_name(&self.me.name), self.death)
                .await;
        }
        if let Some((id, _)) = registered {
            let reason = describe_exit(&exit);
            if let Err(e) = self.client.deregister(id, &reason).await {
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

enum Step {
    Registered(WorkerId, Duration),
    Told(Instruction),
}

/// Resolves when the supervised Dask worker ends; never without one.
async fn dask_ended(process: Option<&dask::DaskProcess>) -> String {
    match process {
        Some(p) => p.ended().await,
        None => std::future::pending().await,
    }
}

/// Why an agent exits, in words for its log and the scheduler.
pub fn describe_exit(exit: &AgentExit) -> String {
    match exit {
        AgentExit::Retired(reason) => format!("retired by the scheduler ({reason})"),
        AgentExit::Signalled("SIGUSR1") => "drained on SIGUSR1 (allocation ending)".into(),
        AgentExit::Walltime => "left before the allocation's time limit (walltime margin)".into(),
        AgentExit::DaskExited(status) => format!("the Dask worker process ended by itself ({status})"),
        AgentExit::Signalled(sig) => format!("stopped by {sig}"),
        AgentExit::SchedulerGone(d) => format!(
            "scheduler unreachable for {:.1} s (death timeout), so this allocation is not left burning",
            d.as_secs_f64()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WorkerArgs,
    }

    #[test]
    fn arguments_after_a_double_dash_go_to_the_dask_worker() {
        let cli = Cli::parse_from([
            "worker",
            "--kind",
            "dask",
            "--python",
            "/venv/bin/python",
            "--interface",
            "ib0",
            "--",
            "--name",
            "x",
            "--resources",
            "GPU=1",
        ]);
        assert_eq!(cli.args.kind, WorkerKind::Dask);
        assert_eq!(cli.args.python, PathBuf::from("/venv/bin/python"));
        assert_eq!(cli.args.name, None, "--name after -- is not the agent's");
        assert_eq!(cli.args.extra, ["--name", "x", "--resources", "GPU=1"]);
    }
}
