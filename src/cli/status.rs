//! `drover status`: the workers a scheduler knows, as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::{presets::NOTHING, Table};
use drover::client::SchedulerClient;
use drover::config::Timeout;
use drover::protocol::{
    short_duration, unix_ms, ClusterStatus, PoolPhase, SchedulerFile, WorkerInfo,
};

use super::error::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    pub(super) scheduler_file: PathBuf,
    /// Print JSON, for scripts.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Redraw the status (with the tasks by state and how fast they end)
    /// every --interval, until Ctrl-C or until no scheduler answers.
    #[arg(long)]
    pub(super) watch: bool,
    /// How often --watch redraws.
    #[arg(long, value_name = "TIME", default_value = "2s", requires = "watch")]
    pub(super) interval: Timeout,
}

/// The status once (`--watch` goes to `status_watch`, which draws with
/// this module's tables).
pub async fn run(args: StatusArgs) -> CliResult {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let client = SchedulerClient::from_file(&file);
    // A scheduler that serves a cluster knows its jobs too.
    if let Ok(cluster) = client.cluster().await {
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&cluster).context("printing the status")?
            );
        } else {
            print!("{}", cluster_table(&cluster));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let workers = client
        .workers()
        .await
        .context("asking the scheduler for its workers")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&workers).context("printing the workers")?
        );
    } else {
        print!("{}", table(&workers));
    }
    Ok(ExitCode::SUCCESS)
}

/// Text from the wire as one terminal line (no escape sequences).
fn shown(text: &str) -> String {
    drover::protocol::text::one_line(text, 200)
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

pub(super) fn table(workers: &[WorkerInfo]) -> String {
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
            shown(&w.name),
            w.slurm.to_string(),
            w.state.to_string(),
            shown(&w.hostname),
            shown(&w.address),
            w.cores.to_string(),
            drover::config::Memory::from_bytes(w.memory_bytes).human(),
            format!("{} ago", seconds(now.saturating_sub(w.last_heartbeat_ms))),
            w.allocation_end
                .map(|end| seconds((end * 1000).saturating_sub(now)))
                .unwrap_or_else(|| "-".into()),
            shown(w.exit_reason.as_deref().unwrap_or_default()),
        ]);
    }
    format!("{t}\n{} workers\n", workers.len())
}

pub(super) fn cluster_table(c: &ClusterStatus) -> String {
    format!("{}{}\n", headline(c), jobs_table(c))
}

/// What the table is headed by: the cluster, its groups, what went wrong.
fn headline(c: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster {} (jobs named {}): {} of {} workers registered; jobs: {}\n",
        c.cluster_id,
        c.job_name,
        c.registered,
        c.target_workers,
        c.job_summary()
    );
    for g in &c.groups {
        let adapt = g
            .adapt
            .as_ref()
            .map(|a| format!(" (adapting {a})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  group {}: {} of {} workers registered{adapt}; jobs: {}\n",
            g.group.as_deref().unwrap_or_default(),
            g.registered,
            g.target_workers,
            g.job_summary()
        ));
        if let Some(m) = &g.memory_growth {
            out.push_str(&format!("    memory: {m}\n"));
        }
    }
    if !c.slurm_api.is_empty() {
        out.push_str(&format!(
            "slurm: {} ({} calls)\n",
            c.slurm_api, c.slurm_calls
        ));
    }
    match &c.phase {
        PoolPhase::Stopped { cause } => out.push_str(&format!("STOPPED: {cause}\n")),
        PoolPhase::SlurmUnreachable { since_ms, error } => {
            let secs = unix_ms().saturating_sub(*since_ms) / 1000;
            out.push_str(&format!(
                "SLURM NOT ANSWERING for {secs} s: submitting and cancelling nothing, keeping the workers ({error})\n"
            ));
        }
        PoolPhase::Running | PoolPhase::Closing => {}
    }
    if let Some(e) = &c.last_error {
        out.push_str(&format!("last error: {}\n", e.error));
    }
    if let Some(h) = &c.held_back {
        out.push_str(&format!("held back: {h}\n"));
    }
    if c.preemptions > 0 {
        out.push_str(&format!(
            "preempted: {} times, {} in the last hour\n",
            c.preemptions, c.recent_preemptions
        ));
    }
    if let Some(g) = &c.memory_growth {
        out.push_str(&format!("memory: {g}\n"));
    }
    // The newest start-up failures (the page shows their log tails).
    let skip = c.failures.len().saturating_sub(3);
    for f in c.failures.iter().skip(skip) {
        out.push_str(&format!("failed: {f}\n"));
    }
    if let Some(d) = &c.dask {
        let seen = d
            .workers
            .map(|n| format!("{n} Dask workers registered"))
            .unwrap_or_else(|| "not answering".into());
        out.push_str(&format!(
            "dask scheduler {} ({}): {seen}; scheduler file {}\n",
            d.address,
            d.http,
            d.scheduler_file.display()
        ));
    }
    out
}

/// The cluster's jobs, one row each (a GROUP column in a pool with groups).
fn jobs_table(c: &ClusterStatus) -> Table {
    let mut t = Table::new();
    let grouped = !c.groups.is_empty();
    let mut header = vec![
        "JOB", "STATE", "REASON", "NODE", "AGE", "LEFT", "WORKER", "ADDRESS", "EXIT", "ACTION",
        "LOG",
    ];
    let now = unix_ms();
    if grouped {
        header.insert(1, "GROUP");
    }
    t.load_style(NOTHING).set_header(header);
    for j in &c.jobs {
        let workers = if j.workers.is_empty() {
            "-".to_string()
        } else {
            j.workers
                .iter()
                .map(|w| format!("{} {} ({})", w.id, w.name, w.state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let addresses = j
            .workers
            .iter()
            .map(|w| w.address.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let mut row = vec![
            j.job.to_string(),
            j.state_words(),
            shown(&j.waiting_words(now)),
            shown(j.node.as_deref().unwrap_or_default()),
            j.age_s.map(short_duration).unwrap_or_default(),
            j.time_left_s(now).map(short_duration).unwrap_or_default(),
            workers,
            addresses,
            j.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            j.action.map(|a| a.to_string()).unwrap_or_default(),
            j.log.display().to_string(),
        ];
        if grouped {
            row.insert(1, j.group.clone().unwrap_or_default());
        }
        t.add_row(row);
    }
    t
}
