//! `JobOptions`: every setting of a worker job, each optional, so that
//! defaults, config files and command-line flags can be layered before one
//! validation turns them into a `JobSpec`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{JobSpec, Memory, SpecError, Timeout, Walltime};

/// Which memory directive the job script carries, for sites that reject one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryDirective {
    /// `--mem`: memory for the whole job on its node.
    #[default]
    Mem,
    /// `--mem-per-cpu`: the job's memory divided by its CPUs, rounded up.
    MemPerCpu,
    /// No memory directive: the partition's default applies.
    None,
}

/// What runs in each worker job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerKind {
    /// drover's own worker agent, running drover tasks.
    #[default]
    Native,
    /// Real Dask workers (the configured Python's `distributed`), supervised
    /// by drover's agent so job mapping, heartbeats and orphan safety still hold.
    Dask,
}

/// Who restarts a Dask worker that dies, and ends one that outgrows its
/// memory limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NannyMode {
    /// drover's agent (one interpreter per Dask worker: `--no-nanny`).
    #[default]
    Agent,
    /// Dask's own nanny process beside each worker.
    Dask,
    /// Nobody: a Dask worker that dies ends its job's agent.
    None,
}

impl std::fmt::Display for NannyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NannyMode::Agent => "agent",
            NannyMode::Dask => "dask",
            NannyMode::None => "none",
        })
    }
}

/// How the `#SBATCH` lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderStyle {
    /// Long options (`--time=00:30:00`), memory in whole MiB rounded up.
    #[default]
    Drover,
    /// As dask-jobqueue writes them: short options where it uses them
    /// (`-J`, `-p`, `-A`, `-n`, `-t`, `-e`, `-o`), memory in the largest
    /// whole unit, rounded up (`--mem=27G`).
    DaskJobqueue,
}

impl std::fmt::Display for WorkerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkerKind::Native => "native",
            WorkerKind::Dask => "dask",
        })
    }
}

/// The settings of one worker job, as a builder, as command-line flags and
/// as the `[job]` table of a config file (keys in kebab-case, as in
/// dask-jobqueue's `jobqueue.yaml`). Unset fields fall through to the layer
/// below; `build` validates the result into a `JobSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobOptions {
    /// CPU cores per worker job (default 1).
    #[arg(long, value_name = "N", help_heading = "Worker job")]
    pub cores: Option<u32>,

    /// Worker processes per job; cores and memory are split between them (default 1).
    #[arg(long, value_name = "N", help_heading = "Worker job")]
    pub processes: Option<u32>,

    /// Nodes per job (default 1): one agent per node, started with srun,
    /// each with `cores` and `memory` of its own node.
    #[arg(long, value_name = "N", help_heading = "Worker job")]
    pub nodes: Option<u32>,

    /// Memory per worker job, e.g. 4GB, 4GiB, 512MB, 1.5G (default 1GiB).
    #[arg(long, value_name = "SIZE", help_heading = "Worker job")]
    pub memory: Option<Memory>,

    /// Time limit per job: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or 90m, 1h30m (default 00:30:00).
    #[arg(long, value_name = "TIME", help_heading = "Worker job")]
    pub walltime: Option<Walltime>,

    /// Slurm partition to submit to (default: the cluster's default partition).
    #[arg(
        long,
        alias = "partition",
        value_name = "PARTITION",
        help_heading = "Worker job"
    )]
    pub queue: Option<String>,

    /// Slurm account to charge.
    #[arg(long, value_name = "ACCOUNT", help_heading = "Worker job")]
    pub account: Option<String>,

    /// Slurm quality of service for the jobs (--qos).
    #[arg(long, value_name = "QOS", help_heading = "Worker job")]
    pub qos: Option<String>,

    /// Network interface workers listen and register on, e.g. ib0.
    #[arg(long, value_name = "IFACE", help_heading = "Worker job")]
    pub interface: Option<String>,

    /// Slurm job name (default drover-worker).
    #[arg(long, value_name = "NAME", help_heading = "Worker job")]
    pub job_name: Option<String>,

    /// Directory for the jobs' stdout/stderr logs, created at submission (default ./drover-logs).
    #[arg(long, value_name = "DIR", help_heading = "Worker job")]
    pub log_directory: Option<PathBuf>,

    /// Scratch directory for workers on the compute node.
    #[arg(long, value_name = "DIR", help_heading = "Worker job")]
    pub local_directory: Option<PathBuf>,

    /// Who may read the logs and task outputs drover writes: private
    /// (files 0600, directories 0700; the default) or group (0640, 0750),
    /// for project directories.
    #[arg(long, value_name = "ACCESS", help_heading = "Worker job")]
    pub file_access: Option<crate::private_fs::Access>,

    /// Extra sbatch option, one per flag, e.g. --job-extra-directives=--qos=debug.
    #[arg(
        long,
        value_name = "OPTION",
        allow_hyphen_values = true,
        help_heading = "Worker job"
    )]
    pub job_extra_directives: Option<Vec<String>>,

    /// sbatch option to leave out of the script, by exact name (-t and --time are the same option).
    #[arg(
        long,
        value_name = "OPTION",
        allow_hyphen_values = true,
        help_heading = "Worker job"
    )]
    pub job_directives_skip: Option<Vec<String>>,

    /// Shell line to run before the worker starts (repeatable), e.g. 'module load python'.
    #[arg(
        long,
        value_name = "LINE",
        allow_hyphen_values = true,
        help_heading = "Worker job"
    )]
    pub job_script_prologue: Option<Vec<String>>,

    /// Shell line to run after the worker exits (repeatable).
    #[arg(
        long,
        value_name = "LINE",
        allow_hyphen_values = true,
        help_heading = "Worker job"
    )]
    pub job_script_epilogue: Option<Vec<String>>,

    /// CPUs to request from Slurm, when it must differ from --cores.
    #[arg(long, value_name = "N", help_heading = "Worker job")]
    pub job_cpu: Option<u32>,

    /// Memory to request from Slurm, when it must differ from --memory.
    #[arg(long, value_name = "SIZE", help_heading = "Worker job")]
    pub job_mem: Option<Memory>,

    /// Which memory directive to emit: mem, mem-per-cpu or none.
    #[arg(long, value_name = "KIND", help_heading = "Worker job")]
    pub memory_directive: Option<MemoryDirective>,

    /// Generic resources per job, as for sbatch --gres, e.g. gpu:2 or gpu:a100:1.
    #[arg(long, value_name = "GRES", help_heading = "Worker job")]
    pub gres: Option<String>,

    /// GPUs per job, as for sbatch --gpus, e.g. 2 or a100:2.
    #[arg(long, value_name = "GPUS", help_heading = "Worker job")]
    pub gpus: Option<String>,

    /// A named resource each worker has, NAME=AMOUNT (repeatable): tasks
    /// asking for it (`drover submit --resource`) run only where it is free.
    #[arg(
        long = "worker-resource",
        value_name = "NAME=AMOUNT",
        help_heading = "Worker job"
    )]
    pub worker_resources: Option<Vec<String>>,

    /// First line of the job script (default '#!/usr/bin/env bash').
    #[arg(long, value_name = "LINE", help_heading = "Worker job")]
    pub shebang: Option<String>,

    /// Extra argument for the worker command (repeatable).
    #[arg(
        long,
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = "Worker job"
    )]
    pub worker_extra_args: Option<Vec<String>>,

    /// Seconds (or 90s, 5m) a worker waits for an unreachable scheduler before exiting (default 60).
    #[arg(long, value_name = "TIME", help_heading = "Worker job")]
    pub death_timeout: Option<Timeout>,

    /// How long before the job's time limit a worker stops taking tasks and leaves, so its job ends COMPLETED, not TIMEOUT; Slurm also signals it then (--signal=B:USR1@MARGIN). 0 turns it off (default: a quarter of the walltime, at most 60 s).
    #[arg(long, value_name = "TIME", help_heading = "Worker job")]
    pub walltime_margin: Option<Timeout>,

    /// Up to how much earlier still each worker leaves, spread by job, so a pool started at once does not end at once (default: a tenth of the walltime, at most 5 m).
    #[arg(long, value_name = "TIME", help_heading = "Worker job")]
    pub walltime_stagger: Option<Timeout>,

    /// What each job runs: drover's own workers (`native`, default) or real Dask workers (`dask`).
    #[arg(long, value_name = "KIND", help_heading = "Worker job")]
    pub kind: Option<WorkerKind>,

    /// The Python with dask and distributed, for `--kind dask` (default: python3; see slurm/python-env).
    #[arg(long, value_name = "PATH", help_heading = "Worker job")]
    pub python: Option<PathBuf>,

    /// With --kind dask: name Dask workers NAME-INDEX, INDEX the job's number in the pool, as dask-jobqueue does; shell variables in NAME are expanded in the job (default: slurm-JOBID).
    #[arg(long, value_name = "NAME", help_heading = "Worker job")]
    pub dask_worker_name: Option<String>,

    /// With --kind dask: the Python module that runs each Dask worker, as dask-jobqueue's worker-command (default distributed.cli.dask_worker).
    #[arg(long, value_name = "MODULE", help_heading = "Worker job")]
    pub dask_worker_module: Option<String>,

    /// With --kind dask: who restarts a dead Dask worker and ends one over its memory limit: agent (default; one interpreter per worker), dask (Dask's nanny) or none.
    #[arg(long, value_name = "MODE", help_heading = "Worker job")]
    pub dask_nanny: Option<NannyMode>,

    /// How #SBATCH lines are written: drover (default) or dask-jobqueue.
    #[arg(long, value_name = "STYLE", help_heading = "Worker job")]
    pub header_style: Option<HeaderStyle>,

    /// The scheduler file workers join (default: $DROVER_SCHEDULER_FILE in the job's environment).
    #[arg(long, value_name = "FILE", help_heading = "Worker job")]
    pub scheduler_file: Option<PathBuf>,

    /// A tera template to render the job script with instead of the built-in one.
    #[arg(long, value_name = "FILE", help_heading = "Worker job")]
    pub template: Option<PathBuf>,

    /// The drover executable the job script runs (default: this one).
    #[arg(long, value_name = "PATH", help_heading = "Worker job")]
    pub drover_bin: Option<PathBuf>,
}

macro_rules! overlay_fields {
    ($low:ident, $high:ident; $($field:ident),* $(,)?) => {
        JobOptions { $($field: $high.$field.or($low.$field)),* }
    };
}

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: impl Into<$ty>) -> Self {
                self.$field = Some(value.into());
                self
            }
        )*
    };
}

impl JobOptions {
    /// Empty options: every field falls through to the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// These options with every field that `higher` sets replaced by its value.
    pub fn overlay(self, higher: JobOptions) -> JobOptions {
        let low = self;
        overlay_fields!(low, higher;
            cores, processes, nodes, memory, walltime, queue, account, qos, interface, job_name,
            log_directory, local_directory, file_access, job_extra_directives, job_directives_skip,
            job_script_prologue, job_script_epilogue, job_cpu, job_mem, memory_directive,
            gres, gpus, worker_resources, shebang, worker_extra_args, death_timeout, walltime_margin,
            walltime_stagger, kind, python, dask_worker_name, dask_worker_module, dask_nanny,
            header_style,
            scheduler_file, template, drover_bin,
        )
    }

    /// Validates the options into a job specification.
    pub fn build(self) -> Result<JobSpec, SpecError> {
        JobSpec::from_options(self)
    }

    setters! {
        /// Sets the CPU cores per job.
        cores: u32,
        /// Sets the worker processes per job.
        processes: u32,
        /// Sets the nodes per job.
        nodes: u32,
        /// Sets the memory per job.
        memory: Memory,
        /// Sets the time limit per job.
        walltime: Walltime,
        /// Sets the partition.
        queue: String,
        /// Sets the account.
        account: String,
        /// Sets the quality of service.
        qos: String,
        /// Sets the workers' network interface.
        interface: String,
        /// Sets the job name.
        job_name: String,
        /// Sets the log directory.
        log_directory: PathBuf,
        /// Sets the workers' local scratch directory.
        local_directory: PathBuf,
        /// Sets who may read the files drover writes.
        file_access: crate::private_fs::Access,
        /// Sets the extra sbatch options.
        job_extra_directives: Vec<String>,
        /// Sets the sbatch options to leave out.
        job_directives_skip: Vec<String>,
        /// Sets the lines run before the worker.
        job_script_prologue: Vec<String>,
        /// Sets the lines run after the worker.
        job_script_epilogue: Vec<String>,
        /// Sets the CPUs requested from Slurm.
        job_cpu: u32,
        /// Sets the memory requested from Slurm.
        job_mem: Memory,
        /// Sets the memory directive kind.
        memory_directive: MemoryDirective,
        /// Sets `--gres`.
        gres: String,
        /// Sets `--gpus`.
        gpus: String,
        /// Sets the named resources each worker has (`NAME=AMOUNT`).
        worker_resources: Vec<String>,
        /// Sets the shebang line.
        shebang: String,
        /// Sets the worker's extra arguments.
        worker_extra_args: Vec<String>,
        /// Sets the death timeout.
        death_timeout: Timeout,
        /// Sets how long before the time limit workers leave.
        walltime_margin: Timeout,
        /// Sets the spread of the workers' leaving times.
        walltime_stagger: Timeout,
        /// Sets what each job runs.
        kind: WorkerKind,
        /// Sets the Python for Dask workers.
        python: PathBuf,
        /// Sets the Dask worker name template.
        dask_worker_name: String,
        /// Sets the Python module that runs each Dask worker.
        dask_worker_module: String,
        /// Sets who nannies Dask workers.
        dask_nanny: NannyMode,
        /// Sets how `#SBATCH` lines are written.
        header_style: HeaderStyle,
        /// Sets the scheduler file workers join.
        scheduler_file: PathBuf,
        /// Sets a template file.
        template: PathBuf,
        /// Sets the drover executable the script runs.
        drover_bin: PathBuf,
    }
}
