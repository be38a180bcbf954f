//! `JobSpec`: a validated worker job, and the `#SBATCH` directives it stands for.

use std::path::PathBuf;

use serde::Serialize;

use super::checks::{
    dask_module, field, worker_resources, Names, Paths, ScriptParts, Size, Timing,
};
use super::{
    check_token, Directive, HeaderStyle, JobOptions, Memory, MemoryDirective, NannyMode, SpecError,
    Timeout, Walltime, WorkerKind,
};

/// A validated worker job: everything needed to render its script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    /// CPU cores for the worker processes of one job.
    pub cores: u32,
    /// Worker processes per node of a job.
    pub processes: u32,
    /// Nodes per job: one agent per node (started with `srun` when more
    /// than one), each with `cores` and `memory` of its node.
    pub nodes: u32,
    /// Memory for the worker processes of one job.
    pub memory: Memory,
    /// Time limit of one job.
    pub walltime: Walltime,
    /// Partition, if not the default.
    pub queue: Option<String>,
    /// Account, if any.
    pub account: Option<String>,
    /// Quality of service, if any.
    pub qos: Option<String>,
    /// Interface workers register on.
    pub interface: Option<String>,
    /// Slurm job name.
    pub job_name: String,
    /// Absolute directory for job logs.
    pub log_directory: PathBuf,
    /// Workers' scratch directory.
    pub local_directory: Option<PathBuf>,
    /// Who may read the logs and task outputs drover writes.
    pub file_access: crate::private_fs::Access,
    /// Extra sbatch options.
    pub job_extra_directives: Vec<Directive>,
    /// Long names of sbatch options left out of the script.
    pub job_directives_skip: Vec<String>,
    /// Lines before the worker command.
    pub job_script_prologue: Vec<String>,
    /// Lines after the worker command.
    pub job_script_epilogue: Vec<String>,
    /// CPUs requested from Slurm.
    pub job_cpu: u32,
    /// Memory requested from Slurm.
    pub job_mem: Memory,
    /// Which memory directive to emit.
    pub memory_directive: MemoryDirective,
    /// `--gres` value.
    pub gres: Option<String>,
    /// `--gpus` value.
    pub gpus: Option<String>,
    /// Named resources each job has (split between its processes).
    pub worker_resources: std::collections::BTreeMap<String, u64>,
    /// The pool group its workers belong to (set by a pool with groups).
    pub group: Option<String>,
    /// First line of the script.
    pub shebang: String,
    /// Extra worker arguments.
    pub worker_extra_args: Vec<String>,
    /// How long a worker waits for an unreachable scheduler.
    pub death_timeout: Timeout,
    /// How long before the time limit workers drain and leave (zero: never).
    pub walltime_margin: Timeout,
    /// Up to how much earlier still a worker leaves, spread by job.
    pub walltime_stagger: Timeout,
    /// What each job runs.
    pub kind: WorkerKind,
    /// The Python whose `distributed` runs Dask workers.
    pub python: PathBuf,
    /// Dask workers are named `NAME-INDEX` (shell variables expanded in the job).
    pub dask_worker_name: Option<String>,
    /// The Python module that runs each Dask worker (`distributed.cli.dask_worker`).
    pub dask_worker_module: String,
    /// Who restarts Dask workers and ends those over their memory limit.
    pub dask_nanny: NannyMode,
    /// How the `#SBATCH` lines are written.
    pub header_style: HeaderStyle,
    /// The scheduler file workers join, if not from the job's environment.
    pub scheduler_file: Option<PathBuf>,
    /// A user template, instead of the built-in one.
    pub template: Option<PathBuf>,
    /// The drover executable the script runs.
    pub drover_bin: PathBuf,
}

impl JobSpec {
    /// A builder with every field unset.
    pub fn builder() -> JobOptions {
        JobOptions::new()
    }

    /// Workers one job runs: its processes on each of its nodes.
    pub fn workers_per_job(&self) -> u32 {
        self.processes.max(1).saturating_mul(self.nodes.max(1))
    }

    pub(crate) fn from_options(mut o: JobOptions) -> Result<JobSpec, SpecError> {
        let size = Size::check(&mut o)?;
        let names = Names::check(&mut o)?;
        let paths = Paths::check(&mut o)?;
        let script = ScriptParts::check(&mut o)?;
        let timing = Timing::check(&mut o)?;
        Ok(JobSpec {
            cores: size.cores,
            processes: size.processes,
            nodes: size.nodes,
            memory: size.memory,
            job_cpu: size.job_cpu,
            job_mem: size.job_mem,
            memory_directive: o.memory_directive.unwrap_or_default(),
            gres: size.gres,
            gpus: size.gpus,
            worker_resources: worker_resources(o.worker_resources.take())?,
            group: None,
            walltime: timing.walltime,
            death_timeout: timing.death_timeout,
            walltime_margin: timing.margin,
            walltime_stagger: timing.stagger,
            queue: names.queue,
            account: names.account,
            qos: names.qos,
            interface: names.interface,
            job_name: names.job_name,
            log_directory: paths.log_directory,
            local_directory: paths.local_directory,
            file_access: o.file_access.unwrap_or_default(),
            scheduler_file: paths.scheduler_file,
            template: paths.template,
            drover_bin: paths.drover_bin,
            python: paths.python,
            job_extra_directives: script.directives,
            job_directives_skip: script.skip,
            job_script_prologue: script.prologue,
            job_script_epilogue: script.epilogue,
            shebang: script.shebang,
            worker_extra_args: script.worker_extra_args,
            kind: o.kind.unwrap_or_default(),
            dask_worker_name: o
                .dask_worker_name
                .map(|n| {
                    field(
                        "dask-worker-name",
                        check_token(&n, "a name without whitespace or control characters, such as `dask-worker` or `run-$SLURM_JOB_NAME`"),
                    )
                    .map(|()| n)
                })
                .transpose()?,
            dask_worker_module: dask_module(o.dask_worker_module)?,
            dask_nanny: o.dask_nanny.unwrap_or_default(),
            header_style: o.header_style.unwrap_or_default(),
        })
    }

    /// Creates the log directory (Slurm does not, and a job whose log
    /// directory is missing fails without a word) with the job's file
    /// access, or checks that an existing one is ours and closed to
    /// others, so no other user reads the logs or plants links in it.
    /// drover's own files there (a scheduler job's script, a detached
    /// pool's log) are written through the returned directory.
    pub fn ensure_log_directory(
        &self,
    ) -> Result<crate::private_fs::PrivateDir, crate::private_fs::FsError> {
        crate::private_fs::PrivateDir::ensure(&self.log_directory, self.file_access)
    }

    /// The log file pattern for stdout (`%x` job name, `%j` job id).
    pub fn output_pattern(&self) -> String {
        format!("{}/%x-%j.out", self.log_directory.display())
    }

    /// The log file pattern for stderr.
    pub fn error_pattern(&self) -> String {
        format!("{}/%x-%j.err", self.log_directory.display())
    }

    /// Every `#SBATCH` directive of the script, in order, after skipping.
    pub fn directives(&self) -> Vec<Directive> {
        let mut d = vec![
            Directive::new("--job-name", &self.job_name),
            Directive::new("--output", self.output_pattern()),
            Directive::new("--error", self.error_pattern()),
        ];
        if let Some(q) = &self.queue {
            d.push(Directive::new("--partition", q));
        }
        if let Some(a) = &self.account {
            d.push(Directive::new("--account", a));
        }
        if let Some(q) = &self.qos {
            d.push(Directive::new("--qos", q));
        }
        d.push(Directive::new("--nodes", self.nodes));
        match self.nodes {
            1 => d.push(Directive::new("--ntasks", 1)),
            _ => d.push(Directive::new("--ntasks-per-node", 1)),
        }
        d.push(Directive::new("--cpus-per-task", self.job_cpu));
        let slurm_memory = |m: Memory| match self.header_style {
            HeaderStyle::Drover => m.to_slurm(),
            HeaderStyle::DaskJobqueue => m.to_slurm_whole_unit(),
        };
        match self.memory_directive {
            MemoryDirective::Mem => d.push(Directive::new("--mem", slurm_memory(self.job_mem))),
            MemoryDirective::MemPerCpu => d.push(Directive::new(
                "--mem-per-cpu",
                slurm_memory(self.job_mem.split_ceil(self.job_cpu)),
            )),
            MemoryDirective::None => {}
        }
        d.push(Directive::new("--time", self.walltime));
        let margin = self.walltime_margin.duration();
        if !margin.is_zero() {
            // Slurm signals in whole seconds; round up so it comes no later.
            let secs = margin.as_secs() + u64::from(margin.subsec_nanos() > 0);
            d.push(Directive::new("--signal", format!("B:USR1@{secs}")));
        }
        if let Some(g) = &self.gres {
            d.push(Directive::new("--gres", g));
        }
        if let Some(g) = &self.gpus {
            d.push(Directive::new("--gpus", g));
        }
        d.extend(self.job_extra_directives.iter().cloned());
        d.retain(|d| !self.job_directives_skip.contains(&d.option));
        d
    }
}
