//! `drover retire`: ask workers to finish and leave, so their jobs end
//! COMPLETED rather than CANCELLED.

use std::path::PathBuf;
use std::process::ExitCode;

use drover::client::SchedulerClient;
use drover::protocol::{SchedulerFile, WorkerId};

use super::error::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
    /// Retire every live worker.
    #[arg(long, conflicts_with = "workers")]
    all: bool,
    /// Workers to retire, by id as `drover status` shows it (w3 or 3).
    #[arg(value_name = "WORKER", required_unless_present = "all")]
    workers: Vec<WorkerId>,
    /// Why, for the workers' logs.
    #[arg(long, default_value = "retired from the command line")]
    reason: String,
}

pub async fn run(args: RetireArgs) -> CliResult {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let client = SchedulerClient::from_file(&file);
    if args.all {
        let n = client
            .retire_all(&args.reason)
            .await
            .context("asking the scheduler to retire its workers")?;
        println!("retiring {n} workers");
        return Ok(ExitCode::SUCCESS);
    }
    for id in args.workers {
        client
            .retire(id, &args.reason)
            .await
            .with_context(|| format!("retiring worker {id}"))?;
        println!("retiring {id}");
    }
    Ok(ExitCode::SUCCESS)
}
