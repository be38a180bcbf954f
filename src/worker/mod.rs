//! The worker agent, `drover worker`, that runs inside each Slurm job: it
//! registers with the scheduler, heartbeats by long-polling (so compute
//! nodes need no inbound port), and exits by itself when told to retire,
//! on a signal, or when the scheduler has been unreachable for its death
//! timeout, so that no allocation is left burning.

mod identity;

pub use identity::Identity;

use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use crate::client::{ClientError, SchedulerClient};
use crate::config::{Memory, Timeout};
use crate::net::NetError;
use crate::protocol::{Instruction, SchedulerFile, SchedulerFileError, WorkerId};

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
    /// Interface whose address the worker registers with, e.g. ib0.
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Scratch directory.
    #[arg(long, value_name = "DIR")]
    pub local_directory: Option<PathBuf>,
    /// Further arguments (kept for worker kinds that take them).
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
}

impl AgentExit {
    /// The process exit status for this ending: success unless the
    /// scheduler vanished.
    pub fn code(&self) -> u8 {
        match self {
            AgentExit::SchedulerGone(_) => 1,
            _ => 0,
        }
    }
}

/// Runs the agent(s) of one job to the end; the first error wins.
pub async fn run(args: WorkerArgs) -> Result<Vec<AgentExit>, AgentError> {
    if args.processes == 0 {
        return Err(AgentError::NoProcesses);
    }
    if !args.extra.is_empty() {
        tracing::warn!(args = ?args.extra, "native workers take no extra arguments; ignoring them");
    }
    let path = args.scheduler_file.clone().ok_or(AgentError::NoScheduler)?;
    let file = SchedulerFile::read(&path)?;
    let client = SchedulerClient::from_file(&file);
    let identity = Identity::detect(&args, client.url()).await?;
    let death = args.death_timeout.duration();
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..args.processes {
        let agent = Agent {
            client: client.clone(),
            me: identity.share(i, args.processes),
            death,
        };
        agents.spawn(agent.run());
    }
    let mut exits = Vec::new();
    while let Some(done) = agents.join_next().await {
        exits.push(done.expect("a worker agent task does not panic")?);
    }
    Ok(exits)
}

/// One worker's life.
struct Agent {
    client: SchedulerClient,
    me: Identity,
    death: Duration,
}

/// Backoff between attempts to reach the scheduler.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

impl Agent {
    async fn run(self) -> Result<AgentExit, AgentError> {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler installs");
        tracing::info!("drover {}", self.me.describe());
        tracing::info!(scheduler = %self.client.url(), "registering");

        let mut registered: Option<(WorkerId, Duration)> = None;
        let mut pause = Duration::ZERO;
        let mut unreachable_since: Option<Instant> = Some(Instant::now());
        let mut retry = FIRST_RETRY;
        loop {
            let step = async {
                match registered {
                    None => self
                        .client
                        .register(&self.me.register_request())
                        .await
                        .map(|r| {
                            Step::Registered(
                                r.worker_id,
                                Duration::from_millis(r.heartbeat_interval_ms),
                            )
                        }),
                    Some((id, interval)) => {
                        tokio::time::sleep(pause).await;
                        self.client.poll(id, interval).await.map(Step::Told)
                    }
                }
            };
            let result = tokio::select! {
                r = step => r,
                _ = term.recv() => return Ok(self.leave(registered, AgentExit::Signalled("SIGTERM")).await),
                _ = int.recv() => return Ok(self.leave(registered, AgentExit::Signalled("SIGINT")).await),
                _ = usr1.recv() => {
                    // No work runs yet, so draining is immediate.
                    tracing::info!("SIGUSR1: allocation ending, draining");
                    return Ok(self.leave(registered, AgentExit::Signalled("SIGUSR1")).await);
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
                Ok(Step::Told(Instruction::Continue { next_poll_ms })) => {
                    pause = Duration::from_millis(next_poll_ms);
                    unreachable_since = None;
                    retry = FIRST_RETRY;
                }
                Ok(Step::Told(Instruction::Retire { reason })) => {
                    return Ok(self.leave(registered, AgentExit::Retired(reason)).await);
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

    /// Deregisters (when registered) with the reason, and logs the exit.
    async fn leave(&self, registered: Option<(WorkerId, Duration)>, exit: AgentExit) -> AgentExit {
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

/// Why an agent exits, in words for its log and the scheduler.
pub fn describe_exit(exit: &AgentExit) -> String {
    match exit {
        AgentExit::Retired(reason) => format!("retired by the scheduler ({reason})"),
        AgentExit::Signalled("SIGUSR1") => "drained on SIGUSR1 (allocation ending)".into(),
        AgentExit::Signalled(sig) => format!("stopped by {sig}"),
        AgentExit::SchedulerGone(d) => format!(
            "scheduler unreachable for {:.1} s (death timeout), so this allocation is not left burning",
            d.as_secs_f64()
        ),
    }
}
