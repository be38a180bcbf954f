//! `drover status`: the workers a scheduler knows, as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{presets::NOTHING, Table};
use drover::client::SchedulerClient;
use drover::protocol::{unix_ms, SchedulerFile, WorkerInfo};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let workers = SchedulerClient::from_file(&file)
        .workers()
        .await
        .context("asking the scheduler for its workers")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&workers)?);
    } else {
        print!("{}", table(&workers));
    }
    Ok(ExitCode::SUCCESS)
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn table(workers: &[WorkerInfo]) -> String {
    let now = unix_ms();
    let mut t = Table::new();
    t.load_style(NOTHING).set_header([
        "WORKER",
        "NAME",
        "JOB",
        "STATE",
        "HOST",
        "ADDRESS",
        "CORES",
        "MEMORY",
        "LAST SEEN",
        "ENDS IN",
        "REASON",
    ]);
    for w in workers {
        t.add_row([
            w.id.to_string(),
            w.name.clone(),
            w.slurm.to_string(),
            w.state.to_string(),
            w.hostname.clone(),
            w.address.clone(),
            w.cores.to_string(),
            drover::config::Memory::from_bytes(w.memory_bytes).human(),
            format!("{} ago", seconds(now.saturating_sub(w.last_heartbeat_ms))),
            w.allocation_end
                .map(|end| seconds((end * 1000).saturating_sub(now)))
                .unwrap_or_else(|| "-".into()),
            w.exit_reason.clone().unwrap_or_default(),
        ]);
    }
    format!("{t}\n{} workers\n", workers.len())
}
