//! Command-line interface: one module per subcommand.

mod job_script;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use drover::config::SpecError;

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
    /// Run the worker agent (inside a Slurm job).
    Worker(drover::worker::WorkerArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::JobScript(args) => job_script::run(cli.config, *args).await,
        Command::Worker(args) => {
            println!("{}", drover::worker::identity(&args));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit status for an error: 2 for bad input (as clap uses for usage
/// errors), 1 for everything else.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| c.downcast_ref::<SpecError>().is_some()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}
