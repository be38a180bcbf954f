//! The worker agent, `drover worker`, that runs inside each Slurm job: it
//! registers with the scheduler, heartbeats by long-polling (so compute
//! nodes need no inbound port), and exits by itself when told to retire,
//! on a signal, or when the scheduler has been unreachable for its death
//! timeout, so that no allocation is left burning.

mod agent;
mod dask;
mod devices;
mod identity;
mod offer;
mod oom;
mod work;

pub use identity::{Identity, JOB_INDEX_BASE};

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientError, SchedulerClient};
use crate::config::{Memory, NannyMode, Timeout, WorkerKind};
use crate::exit::{ExitStatus, FAILURE, USAGE};
use crate::net::NetError;
use crate::protocol::{Departure, SchedulerFile, SchedulerFileError};
use agent::Agent;

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
    /// The job's time limit, as its script asks Slurm for it: with it the
    /// agent knows when its allocation ends without asking Slurm (an
    /// `squeue` per agent at start-up slows a large pool's start).
    #[arg(long, value_name = "TIME")]
    pub walltime: Option<crate::config::Walltime>,
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
    /// Who may read the task logs it writes: private (0600, the default)
    /// or group (0640).
    #[arg(long, value_name = "ACCESS", default_value = "private")]
    pub file_access: crate::private_fs::Access,
    /// GPUs this job's workers hand to tasks, as device ids (`0,1`; default:
    /// `CUDA_VISIBLE_DEVICES`, which Slurm sets to the job's GPUs).
    #[arg(long, value_name = "LIST")]
    pub gpus: Option<String>,
    /// A named resource this job's workers have, NAME=AMOUNT (repeatable).
    #[arg(long = "resource", value_name = "NAME=AMOUNT", value_parser = crate::protocol::parse_resource)]
    pub resources: Vec<(String, u64)>,
    /// The pool group this job belongs to.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// What this job runs: drover tasks (`native`) or a real Dask worker (`dask`).
    #[arg(long, value_name = "KIND", default_value = "native")]
    pub kind: WorkerKind,
    /// The Python whose `distributed` runs the Dask worker (`--kind dask`).
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub python: PathBuf,
    /// Name the Dask workers NAME-INDEX, INDEX this job's number in its pool (`--kind dask`).
    #[arg(long, value_name = "NAME")]
    pub dask_name: Option<String>,
    /// The Python module that runs the Dask worker (`--kind dask`).
    #[arg(long, value_name = "MODULE", default_value = crate::config::DEFAULT_DASK_WORKER_MODULE)]
    pub dask_module: String,
    /// Who restarts the Dask worker and ends it over its memory limit: agent, dask or none.
    #[arg(long, value_name = "MODE", default_value = "agent")]
    pub nanny: NannyMode,
    /// Further arguments: for `--kind dask`, passed on to `dask worker`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

impl WorkerArgs {
    /// Expands `$NAME` and `${NAME}` in the scratch directory and the Dask
    /// name from `lookup` (the job's environment): the job script passes
    /// them single-quoted, so the node's `$TMPDIR` and `$SLURM_JOB_ID`
    /// are filled in here, and nothing else (`$(...)`, backquotes) is ever
    /// evaluated. A variable that is not set expands to nothing, as in the
    /// shell.
    pub fn expand_variables(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let expand = |text: &str| {
            shellexpand::env_with_context_no_errors(text, |name| {
                Some(lookup(name).unwrap_or_default())
            })
            .into_owned()
        };
        if let Some(d) = &self.local_directory {
            self.local_directory = Some(PathBuf::from(expand(&d.to_string_lossy())));
        }
        if let Some(n) = &self.dask_name {
            self.dask_name = Some(expand(n));
        }
    }
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
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    /// `--gpus`, `--resource` or `--group` is malformed.
    #[error(transparent)]
    Offer(#[from] crate::protocol::ResourceError),
    /// The task log directory is not safe to write into.
    #[error("task log directory: {0}")]
    TaskLogs(#[from] crate::private_fs::FsError),
}

impl ExitStatus for AgentError {
    fn exit_code(&self) -> u8 {
        match self {
            AgentError::NoScheduler
            | AgentError::NoProcesses
            | AgentError::NoDaskScheduler(_)
            | AgentError::DaskSpawn { .. }
            | AgentError::Offer(_) => USAGE,
            AgentError::SchedulerFile(e) => e.exit_code(),
            AgentError::Interface(e) => e.exit_code(),
            AgentError::TaskLogs(e) => e.exit_code(),
            AgentError::Rejected(_) | AgentError::Signals(_) => FAILURE,
        }
    }
}

/// A signal an agent acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop now (a cancelled job).
    Term,
    /// SIGINT: stop now.
    Int,
    /// SIGUSR1: Slurm's warning that the time limit is near.
    Usr1,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Usr1 => "SIGUSR1",
        })
    }
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// The scheduler asked it to retire.
    Retired(String),
    /// A signal told it to stop (SIGTERM, SIGINT) or drain (SIGUSR1).
    Signalled(Signal),
    /// The scheduler was unreachable for the whole death timeout.
    SchedulerGone(Duration),
    /// It left before its allocation's time limit.
    Walltime,
    /// The Dask worker process it supervises ended by itself.
    DaskExited(String),
}

impl AgentExit {
    /// The process exit status for this ending: success unless the
    /// scheduler vanished or the Dask worker died.
    pub fn code(&self) -> u8 {
        match self {
            AgentExit::SchedulerGone(_) | AgentExit::DaskExited(_) => FAILURE,
            AgentExit::Retired(_) | AgentExit::Signalled(_) | AgentExit::Walltime => 0,
        }
    }

    /// How the scheduler should take its leaving: a signal from outside
    /// (Slurm preempting or cancelling the job) stopped its runs.
    pub fn departure(&self) -> Departure {
        match self {
            AgentExit::Signalled(Signal::Term | Signal::Int) => Departure::Stopped,
            _ => Departure::Orderly,
        }
    }

    /// Whether it leaves on purpose and in order (retired, or ahead of its
    /// time limit), so a Dask worker's results are moved first.
    pub fn is_graceful(&self) -> bool {
        matches!(
            self,
            AgentExit::Retired(_) | AgentExit::Walltime | AgentExit::Signalled(Signal::Usr1)
        )
    }
}

/// Why an agent exits, in words for its log and the scheduler.
pub fn describe_exit(exit: &AgentExit) -> String {
    match exit {
        AgentExit::Retired(reason) => format!("retired by the scheduler ({reason})"),
        AgentExit::Signalled(Signal::Usr1) => "drained on SIGUSR1 (allocation ending)".into(),
        AgentExit::Signalled(sig) => format!("stopped by {sig}"),
        AgentExit::Walltime => "left before the allocation's time limit (walltime margin)".into(),
        AgentExit::DaskExited(status) => {
            format!("the Dask worker process ended by itself ({status})")
        }
        AgentExit::SchedulerGone(d) => format!(
            "scheduler unreachable for {:.1} s (death timeout), so this allocation is not left burning",
            d.as_secs_f64()
        ),
    }
}

/// Backoff between attempts to reach the scheduler.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Runs the agent(s) of one job to the end; the first error wins.
pub async fn run(mut args: WorkerArgs) -> Result<Vec<AgentExit>, AgentError> {
    args.expand_variables(|name| std::env::var(name).ok());
    if args.processes == 0 {
        return Err(AgentError::NoProcesses);
    }
    if !args.extra.is_empty() && args.kind == WorkerKind::Native {
        tracing::warn!(args = ?args.extra, "native workers take no extra arguments; ignoring them");
    }
    let path = args.scheduler_file.clone().ok_or(AgentError::NoScheduler)?;
    let file = SchedulerFile::read(&path)?;
    let client = SchedulerClient::from_path(&path)?;
    let identity = Identity::detect(&args, &client.url()).await?;
    // Dask's nanny: one process for the whole job; else one per agent.
    let shared = match (args.kind, args.nanny) {
        (WorkerKind::Dask, NannyMode::Dask) => {
            let me = identity.clone().with_dask_name(args.dask_name.as_deref());
            Some(Arc::new(start_dask(
                &args,
                &file,
                &path,
                &me,
                args.processes,
            )?))
        }
        _ => None,
    };
    let task_logs = args
        .local_directory
        .clone()
        .or_else(|| path.parent().map(|p| p.join("drover-tasks")));
    // Created private, or checked to be ours and closed to others: task
    // output is never written where another user could read it or plant a
    // link (a directory that fails the check ends the worker, naming why).
    let task_logs = task_logs
        .map(|dir| crate::private_fs::PrivateDir::ensure(&dir, args.file_access).map(Arc::new))
        .transpose()?;
    let mut processes: Vec<Arc<dask::DaskProcess>> = shared.iter().cloned().collect();
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..args.processes {
        let mut me = identity.share(i, args.processes);
        let mut dask = shared.clone();
        if args.kind == WorkerKind::Dask {
            me = me.with_dask_name(args.dask_name.as_deref());
            if dask.is_none() {
                let own = Arc::new(start_dask(&args, &file, &path, &me, 1)?);
                processes.push(own.clone());
                dask = Some(own);
            }
        }
        let agent = Agent {
            client: client.clone(),
            me,
            death: args.death_timeout.duration(),
            margin: args.walltime_margin.duration(),
            task_logs: task_logs.clone(),
            kind: args.kind,
            dask,
        };
        agents.spawn(agent.run());
    }
    let mut exits = Vec::new();
    let mut failed = None;
    while let Some(done) = agents.join_next().await {
        match done {
            Ok(Ok(exit)) => exits.push(exit),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            // An agent that panicked is a bug: let it surface as one.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    let grace = dask_grace(&exits, args.death_timeout.duration());
    for process in &processes {
        process.stop(grace).await;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(exits),
    }
}

/// How long the Dask workers get to close once the agents left. Stopped
/// by Slurm (SIGTERM: preemption, `scancel`) they retire through Dask on
/// their own (drover's preload): they get the death timeout to finish,
/// within which Slurm's own grace bounds them too.
fn dask_grace(exits: &[AgentExit], death: Duration) -> Duration {
    let stopped = exits
        .iter()
        .any(|e| matches!(e, AgentExit::Signalled(Signal::Term)));
    match stopped {
        true => death.max(dask::STOP_GRACE),
        false => dask::STOP_GRACE,
    }
}

/// Starts a Dask worker process under its supervisor: `nworkers` workers
/// under Dask's nanny, or one worker that the agent nannies (`me`'s share).
fn start_dask(
    args: &WorkerArgs,
    file: &SchedulerFile,
    path: &std::path::Path,
    me: &Identity,
    nworkers: u32,
) -> Result<dask::DaskProcess, AgentError> {
    let endpoint = file
        .dask
        .clone()
        .ok_or_else(|| AgentError::NoDaskScheduler(path.to_path_buf()))?;
    // Under Dask's nanny, `me` is the whole job: Dask names its workers
    // NAME-0, NAME-1..., each with its share.
    let name = me.dask_name.clone().unwrap_or_default();
    let share = me.share(0, nworkers);
    let command = crate::dask::DaskWorkerCommand {
        python: args.python.clone(),
        module: args.dask_module.clone(),
        scheduler: endpoint.address.clone(),
        nthreads: share.cores,
        nworkers,
        memory_limit: share.memory.bytes(),
        name,
        death_timeout: args.death_timeout.duration(),
        interface: args.interface.clone(),
        host: Some(me.address),
        nanny: args.nanny == NannyMode::Dask,
        local_directory: args.local_directory.clone(),
        extra: args.extra.clone(),
        tls: endpoint.tls.clone(),
        preload: None,
    };
    let supervision = dask::Supervision {
        restart: args.nanny == NannyMode::Agent,
        memory_limit: (args.nanny == NannyMode::Agent).then(|| share.memory.bytes()),
    };
    dask::DaskProcess::start(&command, &endpoint, supervision).map_err(|cause| {
        AgentError::DaskSpawn {
            python: args.python.clone(),
            cause,
        }
    })
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
    fn variables_in_the_scratch_directory_and_dask_name_expand_and_nothing_else_does() {
        let mut args = Cli::parse_from([
            "worker",
            "--local-directory",
            "$TMPDIR/dask-${SLURM_JOB_ID}",
            "--dask-name",
            "run-$SLURM_JOB_ID-$(id)-`id`-$UNSET",
        ])
        .args;
        args.expand_variables(|name| match name {
            "TMPDIR" => Some("/tmp/job7".into()),
            "SLURM_JOB_ID" => Some("7".into()),
            _ => None,
        });
        assert_eq!(
            args.local_directory.unwrap(),
            PathBuf::from("/tmp/job7/dask-7")
        );
        assert_eq!(args.dask_name.unwrap(), "run-7-$(id)-`id`-");
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
