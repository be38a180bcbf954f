//! Command-line interface: one module per subcommand.

mod cluster;
mod dashboard;
mod doctor;
mod driver;
mod error;
mod groups;
mod job_script;
mod jobs;
mod pool;
mod ready;
mod remote;
mod report;
mod retire;
mod run;
mod scheduler;
mod scheduler_job;
mod slurm_args;
mod status;
mod status_watch;
mod tasks;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use error::CliResult;

/// Elastic worker pools on Slurm.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
pub struct Cli {
    /// Project config file (default: ./drover.toml when present).
    #[arg(long, global = true, env = "DROVER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the job script a worker job would be submitted with; --check asks Slurm whether it would accept it.
    JobScript(Box<job_script::JobScriptArgs>),
    /// Run the worker agent (inside a Slurm job): register, heartbeat, exit when told or when the scheduler is gone.
    Worker(Box<drover::worker::WorkerArgs>),
    /// Run a standalone scheduler that workers register with.
    Scheduler(scheduler::SchedulerArgs),
    /// Show the workers of a cluster.
    Status(status::StatusArgs),
    /// What a pool cost and used: allocated against busy core-hours, idle, billing units, energy.
    Report(report::ReportArgs),
    /// Print a URL that logs a browser in to the pool's live status page (its last line).
    Dashboard(dashboard::DashboardArgs),
    /// Ask workers to finish and leave (their jobs end COMPLETED).
    Retire(retire::RetireArgs),
    /// Run a pool of workers on Slurm.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Bring a pool up, run COMMAND with its address in the environment, then cancel every job.
    Run(Box<run::RunArgs>),
    /// Scale a running pool to N workers.
    Scale(cluster::ScaleArgs),
    /// Close a running pool: workers retire, remaining jobs are cancelled.
    Close(cluster::CloseArgs),
    /// Print the logs of a worker's job.
    Logs(jobs::LogsArgs),
    /// Cancel every Slurm job of a cluster.
    Cancel(jobs::CancelArgs),
    /// Submit a task (or an array of tasks) to a running pool.
    Submit(Box<tasks::SubmitArgs>),
    /// Wait for tasks to end; exit 1 if any failed.
    Wait(tasks::WaitArgs),
    /// Look at or cancel tasks.
    #[command(subcommand)]
    Task(tasks::TaskCommand),
    /// Run or draw a graph file of tasks.
    #[command(subcommand)]
    Graph(tasks::GraphCommand),
    /// Check a site before relying on it: Slurm, accounting, the partition's limits, the job script, and (with a probe job) that the nodes reach the scheduler.
    Doctor(Box<doctor::DoctorArgs>),
    /// (internal) cancel a cluster's jobs once its driver process is gone.
    #[command(hide = true)]
    Reaper(jobs::ReaperArgs),
    /// (internal) the probe job of `drover doctor`.
    #[command(hide = true)]
    Probe(doctor::ProbeArgs),
}

impl Cli {
    /// Whether this command runs best on one thread. A standalone
    /// scheduler serves many small requests, and a worker's agent waits on
    /// its scheduler and its tasks' processes: neither needs a thread per
    /// core. An agent on a 128-core node would otherwise start 128 runtime
    /// threads, in every job on the node, and on a node where the agents
    /// of a pool start together each start costs the others CPU.
    pub fn single_threaded(&self) -> bool {
        matches!(self.command, Command::Scheduler(_) | Command::Worker(_))
    }

    /// Whether this command's log belongs on stdout (a worker's job log).
    pub fn logs_to_stdout(&self) -> bool {
        matches!(self.command, Command::Worker(_))
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::JobScript(args) => job_script::run(cli.config, *args).await,
        Command::Worker(args) => worker::run(*args).await,
        Command::Scheduler(args) => scheduler::run(cli.config, args).await,
        Command::Status(args) if args.watch => {
            status_watch::watch(&args.scheduler_file, args.interval.duration()).await
        }
        Command::Status(args) => status::run(args).await,
        Command::Dashboard(args) => dashboard::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Retire(args) => retire::run(args).await,
        Command::Cluster(c) => cluster::run(cli.config, c).await,
        Command::Run(args) => run::run(cli.config, *args).await,
        Command::Scale(args) => cluster::scale(args).await,
        Command::Close(args) => cluster::close(args).await,
        Command::Logs(args) => jobs::logs(args).await,
        Command::Cancel(args) => jobs::cancel(cli.config, args).await,
        Command::Reaper(args) => jobs::reaper(args).await,
        Command::Doctor(args) => doctor::run(cli.config, *args).await,
        Command::Probe(args) => doctor::probe(args).await,
        Command::Submit(args) => tasks::submit(*args).await,
        Command::Wait(args) => tasks::wait(args).await,
        Command::Task(c) => tasks::task(c).await,
        Command::Graph(c) => tasks::graph(c).await,
    }
}
