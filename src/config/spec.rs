//! `JobSpec`: a validated worker job, and the `#SBATCH` directives it stands for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::directive::normalize_option;
use super::{
    check_line, check_token, Directive, HeaderStyle, JobOptions, Memory, MemoryDirective,
    NannyMode, SpecError, Timeout, ValueError, Walltime, WorkerKind,
};

const DEFAULT_JOB_NAME: &str = "drover-worker";
const DEFAULT_LOG_DIRECTORY: &str = "drover-logs";
const DEFAULT_SHEBANG: &str = "#!/usr/bin/env bash";
const DEFAULT_DEATH_TIMEOUT: Duration = Duration::from_secs(60);
/// The default walltime margin is a quarter of the walltime, at most this.
const MAX_DEFAULT_MARGIN: Duration = Duration::from_secs(60);
/// The default stagger is a tenth of the walltime, at most this.
const MAX_DEFAULT_STAGGER: Duration = Duration::from_secs(300);
/// Half an hour, as dask-jobqueue.
const DEFAULT_WALLTIME: Walltime = Walltime::from_mins(30);
const DEFAULT_MEMORY: Memory = Memory::from_mib(1024);

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

fn field<T>(name: &'static str, r: Result<T, ValueError>) -> Result<T, SpecError> {
    r.map_err(|e| SpecError::invalid(name, e))
}

/// The most cores (or processes) one job may ask for: more than any node.
pub const MAX_JOB_CORES: u32 = 65_536;

fn positive(name: &'static str, value: u32) -> Result<u32, SpecError> {
    let accepted = "a whole number from 1 to 65536";
    field(
        name,
        match value {
            0 => Err(ValueError::new("0", "it must be at least 1", accepted)),
            v if v > MAX_JOB_CORES => Err(ValueError::new(
                &v.to_string(),
                "it is more than any node has",
                accepted,
            )),
            v => Ok(v),
        },
    )
}

fn token(
    name: &'static str,
    value: Option<String>,
    what: &str,
) -> Result<Option<String>, SpecError> {
    match value {
        Some(v) => {
            field(name, check_token(&v, what))?;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

fn path(name: &'static str, value: PathBuf) -> Result<PathBuf, SpecError> {
    const FORMS: &str = "a directory path without whitespace or control characters";
    let text = value.to_string_lossy();
    field(name, check_line(&text, FORMS))?;
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(SpecError::invalid(
            name,
            ValueError::new(&text, "it is empty or contains whitespace", FORMS),
        ));
    }
    Ok(absolute(&value))
}

/// The workers' scratch directory: as `path`, except that one starting
/// with a shell variable (`$TMPDIR`, `${SCRATCH}/dask`) is kept as written,
/// for the job's shell to expand on the node.
fn scratch_path(value: PathBuf) -> Result<PathBuf, SpecError> {
    if value.to_string_lossy().starts_with('$') {
        return path("local-directory", value.clone()).map(|_| value);
    }
    path("local-directory", value)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn lines(name: &'static str, values: Vec<String>) -> Result<Vec<String>, SpecError> {
    const FORMS: &str = "shell lines without NUL or control characters";
    let mut out = Vec::new();
    for v in values {
        for line in v.lines() {
            field(name, check_line(line, FORMS))?;
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// Checks a comma-separated list of `:`-joined resource words; with
/// `count_last`, each item must end in a count (as `--gpus` wants).
fn resource(
    name: &'static str,
    value: Option<String>,
    forms: &str,
    count_last: bool,
) -> Result<Option<String>, SpecError> {
    let Some(v) = value else { return Ok(None) };
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let ok = v.split(',').all(|item| {
        item.split(':').all(word)
            && (!count_last
                || item
                    .rsplit(':')
                    .next()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
    });
    if ok {
        Ok(Some(v))
    } else {
        Err(SpecError::invalid(
            name,
            ValueError::new(&v, "it is not a resource specification", forms),
        ))
    }
}

/// What one job asks of a node: cores, processes, memory, devices.
struct Size {
    cores: u32,
    processes: u32,
    nodes: u32,
    memory: Memory,
    job_cpu: u32,
    job_mem: Memory,
    gres: Option<String>,
    gpus: Option<String>,
}

impl Size {
    fn check(o: &mut JobOptions) -> Result<Size, SpecError> {
        let cores = positive("cores", o.cores.unwrap_or(1))?;
        let processes = positive("processes", o.processes.unwrap_or(1))?;
        if processes > cores {
            return Err(SpecError::Conflict(format!(
                "processes = {processes} needs at least as many cores, but cores = {cores}; \
                 raise cores or lower processes"
            )));
        }
        let memory = o.memory.unwrap_or(DEFAULT_MEMORY);
        let nodes = positive("nodes", o.nodes.unwrap_or(1))?;
        if nodes > 1 && o.kind == Some(WorkerKind::Dask) {
            return Err(SpecError::Conflict(format!(
                "nodes = {nodes} with kind = \"dask\": Dask workers run one job per node; use nodes = 1"
            )));
        }
        Ok(Size {
            cores,
            processes,
            nodes,
            memory,
            job_cpu: positive("job-cpu", o.job_cpu.unwrap_or(cores))?,
            job_mem: o.job_mem.unwrap_or(memory),
            gres: resource(
                "gres",
                o.gres.take(),
                "NAME[:TYPE][:COUNT], comma-separated, e.g. `gpu:2` or `gpu:a100:1`",
                false,
            )?,
            gpus: resource(
                "gpus",
                o.gpus.take(),
                "[TYPE:]COUNT, e.g. `2` or `a100:2`",
                true,
            )?,
        })
    }
}

/// The names that land in `#SBATCH` lines and on the worker's command line.
struct Names {
    queue: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    interface: Option<String>,
    job_name: String,
}

impl Names {
    fn check(o: &mut JobOptions) -> Result<Names, SpecError> {
        let queue = token(
            "queue",
            o.queue.take(),
            "a partition name without whitespace or control characters",
        )?;
        let account = token(
            "account",
            o.account.take(),
            "an account name without whitespace or control characters",
        )?;
        let qos = token(
            "qos",
            o.qos.take(),
            "a QOS name without whitespace or control characters",
        )?;
        let job_name = job_name(o.job_name.take().unwrap_or_else(|| DEFAULT_JOB_NAME.into()))?;
        let interface = o.interface.take().map(interface).transpose()?;
        Ok(Names {
            queue,
            account,
            qos,
            interface,
            job_name,
        })
    }
}

/// Checks a job name. It becomes part of each job's log file name
/// (`%x-%j.out`), so it may not leave the log directory (`/`), name a
/// Slurm file pattern (`%`), or be longer than a file name may be.
fn job_name(name: String) -> Result<String, SpecError> {
    const FORMS: &str = "a job name of at most 200 characters, without whitespace, control characters, `/` or `%`, not starting with `-` or `.`";
    field("job-name", check_token(&name, FORMS))?;
    let why = if name.contains('/') {
        Some("it contains `/`, which would put its logs outside the log directory")
    } else if name.contains('%') {
        Some("it contains `%`, which Slurm reads as a file name pattern")
    } else if name.starts_with('.') {
        Some("it starts with `.`")
    } else if name.chars().count() > 200 {
        Some("it is longer than 200 characters")
    } else {
        None
    };
    match why {
        Some(why) => Err(SpecError::invalid(
            "job-name",
            ValueError::new(&name, why, FORMS),
        )),
        None => Ok(name),
    }
}

/// Checks a network interface name.
fn interface(i: String) -> Result<String, SpecError> {
    // A label such as `eth0:worker` names one address of an interface, as
    // `ip addr ... label` sets it and getifaddrs (and Dask) report it.
    const FORMS: &str = "a network interface name such as `ib0`, `eth0` or the label `eth0:worker` (1 to 15 characters, no `/` or whitespace)";
    field("interface", check_token(&i, FORMS))?;
    if i.len() > 15 || i.contains('/') {
        return Err(SpecError::invalid(
            "interface",
            ValueError::new(&i, "it is not a valid interface name", FORMS),
        ));
    }
    Ok(i)
}

/// The files and programs a job uses.
struct Paths {
    log_directory: PathBuf,
    local_directory: Option<PathBuf>,
    scheduler_file: Option<PathBuf>,
    template: Option<PathBuf>,
    drover_bin: PathBuf,
    python: PathBuf,
}

impl Paths {
    fn check(o: &mut JobOptions) -> Result<Paths, SpecError> {
        let log_directory = path(
            "log-directory",
            o.log_directory
                .take()
                .unwrap_or_else(|| DEFAULT_LOG_DIRECTORY.into()),
        )?;
        let drover_bin = match o.drover_bin.take() {
            Some(p) => path("drover-bin", p)?,
            None => std::env::current_exe()
                .ok()
                .filter(|p| !p.to_string_lossy().contains(char::is_whitespace))
                .unwrap_or_else(|| PathBuf::from("drover")),
        };
        let python = match o.python.take() {
            // A bare name is looked up on the job's PATH; a path is kept
            // as given (a venv's python must not be resolved through its symlink).
            Some(p) if p.components().count() > 1 => path("python", p)?,
            Some(p) => {
                path("python", p.clone())?;
                p
            }
            None => PathBuf::from("python3"),
        };
        Ok(Paths {
            log_directory,
            local_directory: o.local_directory.take().map(scratch_path).transpose()?,
            scheduler_file: o
                .scheduler_file
                .take()
                .map(|p| path("scheduler-file", p))
                .transpose()?,
            template: o.template.take().map(|p| absolute(&p)),
            drover_bin,
            python,
        })
    }
}

/// The script's own text around the worker: directives, lines, arguments.
struct ScriptParts {
    directives: Vec<Directive>,
    skip: Vec<String>,
    prologue: Vec<String>,
    epilogue: Vec<String>,
    shebang: String,
    worker_extra_args: Vec<String>,
}

impl ScriptParts {
    fn check(o: &mut JobOptions) -> Result<ScriptParts, SpecError> {
        let directives = o
            .job_extra_directives
            .take()
            .unwrap_or_default()
            .iter()
            .map(|d| field("job-extra-directives", Directive::parse(d)))
            .collect::<Result<Vec<_>, _>>()?;
        let skip = o
            .job_directives_skip
            .take()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                field(
                    "job-directives-skip",
                    normalize_option(s.trim()).ok_or_else(|| {
                        ValueError::new(
                            s,
                            "it is not an sbatch option name",
                            "an option name such as `--mem`, `-t` or `--time`",
                        )
                    }),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The pool finds and cancels its jobs by their name and comment.
        if let Some(s) = skip
            .iter()
            .find(|s| *s == "--job-name" || *s == "--comment")
        {
            return Err(SpecError::invalid(
                "job-directives-skip",
                ValueError::new(
                    s,
                    "drover finds and cancels its jobs by this directive, so it cannot be left out",
                    "an option name other than --job-name (-J) and --comment, such as `--mem` or `-t`",
                ),
            ));
        }
        let shebang = o.shebang.take().unwrap_or_else(|| DEFAULT_SHEBANG.into());
        const SHEBANG: &str = "one line starting with `#!`, e.g. `#!/usr/bin/env bash`";
        field("shebang", check_line(&shebang, SHEBANG))?;
        if !shebang.starts_with("#!") {
            return Err(SpecError::invalid(
                "shebang",
                ValueError::new(&shebang, "it does not start with `#!`", SHEBANG),
            ));
        }
        let worker_extra_args = o.worker_extra_args.take().unwrap_or_default();
        for a in &worker_extra_args {
            field(
                "worker-extra-args",
                check_line(a, "arguments without newline, NUL or control characters"),
            )?;
        }
        Ok(ScriptParts {
            directives,
            skip,
            prologue: lines(
                "job-script-prologue",
                o.job_script_prologue.take().unwrap_or_default(),
            )?,
            epilogue: lines(
                "job-script-epilogue",
                o.job_script_epilogue.take().unwrap_or_default(),
            )?,
            shebang,
            worker_extra_args,
        })
    }
}

/// The job's time: its limit and when its workers leave before it.
struct Timing {
    walltime: Walltime,
    death_timeout: Timeout,
    margin: Timeout,
    stagger: Timeout,
}

impl Timing {
    fn check(o: &mut JobOptions) -> Result<Timing, SpecError> {
        let walltime = o.walltime.unwrap_or(DEFAULT_WALLTIME);
        let limit = Duration::from_secs(walltime.as_secs());
        let margin = o
            .walltime_margin
            .unwrap_or(Timeout::new((limit / 4).min(MAX_DEFAULT_MARGIN)));
        let stagger = o
            .walltime_stagger
            .unwrap_or(Timeout::new((limit / 10).min(MAX_DEFAULT_STAGGER)));
        if margin.duration().saturating_add(stagger.duration()) >= limit {
            return Err(SpecError::Conflict(format!(
                "walltime-margin = {margin} plus walltime-stagger = {stagger} \
                 leaves no time of the walltime {walltime}; lower them or raise the walltime"
            )));
        }
        Ok(Timing {
            walltime,
            death_timeout: o
                .death_timeout
                .unwrap_or(Timeout::new(DEFAULT_DEATH_TIMEOUT)),
            margin,
            stagger,
        })
    }
}

/// The Dask worker module when none is named.
pub const DEFAULT_DASK_WORKER_MODULE: &str = "distributed.cli.dask_worker";

/// Checks a Python module name (`python -m NAME`): dotted identifiers.
fn dask_module(name: Option<String>) -> Result<String, SpecError> {
    let Some(name) = name else {
        return Ok(DEFAULT_DASK_WORKER_MODULE.into());
    };
    let identifier = |w: &str| {
        w.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && w.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    if name.split('.').all(identifier) {
        return Ok(name);
    }
    Err(SpecError::invalid(
        "dask-worker-module",
        ValueError::new(
            &name,
            "it is not a Python module name",
            "a dotted module name such as `distributed.cli.dask_worker` or `dask_cuda.cli`",
        ),
    ))
}

/// `worker-resources`: `NAME=AMOUNT` items, amounts of one name summed.
fn worker_resources(
    items: Option<Vec<String>>,
) -> Result<std::collections::BTreeMap<String, u64>, SpecError> {
    let mut all = std::collections::BTreeMap::new();
    for item in items.unwrap_or_default() {
        let (name, amount) = super::resource::parse_resource(&item).map_err(|e| {
            SpecError::invalid(
                "worker-resources",
                ValueError::new(&item, "it is not a resource", &e.accepted),
            )
        })?;
        let total: &mut u64 = all.entry(name).or_default();
        *total = total.saturating_add(amount);
    }
    super::resource::check_resources("worker-resources", &all).map_err(|e| {
        SpecError::invalid(
            "worker-resources",
            ValueError::new(&e.value, "too many or too much", &e.accepted),
        )
    })?;
    Ok(all)
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

    /// Creates the log directory: Slurm does not, and a job whose log
    /// directory is missing fails without a word.
    pub fn ensure_log_directory(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.log_directory)
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
