//! The worker agent that runs inside each Slurm job.
//!
//! For now it announces who and where it is and exits successfully; the
//! control-plane issue turns it into the agent that registers with the
//! scheduler, heartbeats and runs work.

use std::path::PathBuf;

use crate::config::{Memory, Timeout};

/// What a worker job tells its agent.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Cores for this job's workers.
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,
    /// Memory for this job's workers.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<Memory>,
    /// Worker processes in this job.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub processes: u32,
    /// How long to wait for an unreachable scheduler before exiting.
    #[arg(long, value_name = "TIME", default_value = "60")]
    pub death_timeout: Timeout,
    /// Interface to register on, e.g. ib0.
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Scratch directory.
    #[arg(long, value_name = "DIR")]
    pub local_directory: Option<PathBuf>,
    /// Further arguments, passed through.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

/// Who and where this worker is, as its log's first line says.
pub fn identity(args: &WorkerArgs) -> String {
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "none".into());
    let host = sysinfo::System::host_name().unwrap_or_else(|| "unknown".into());
    let address = match &args.interface {
        Some(i) => match crate::net::interface_ipv4(i) {
            Ok(a) => format!("{i} {a}"),
            Err(e) => format!("{i}: {e}"),
        },
        None => "no interface set".into(),
    };
    let cores = args
        .cores
        .map(|c| c.to_string())
        .unwrap_or_else(|| "?".into());
    let memory = args
        .memory
        .map(|m| m.to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "drover worker: job {job} on {host} ({address}), {cores} cores, {memory} memory, {} process(es)",
        args.processes
    )
}
