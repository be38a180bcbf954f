//! `drover worker`: the agent inside each Slurm job.

use std::process::ExitCode;

use drover::worker::{self, WorkerArgs};

use super::error::CliResult;

pub async fn run(args: WorkerArgs) -> CliResult {
    let exits = worker::run(args).await?;
    let code = exits.iter().map(|e| e.code()).max().unwrap_or(0);
    Ok(ExitCode::from(code))
}
