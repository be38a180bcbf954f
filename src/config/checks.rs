//! The checks of each part of a job's options (its size, names, paths,
//! script parts and timing), each read out of `JobOptions` into a checked
//! value that `JobSpec::from_options` puts together. Every error names the
//! field and the accepted forms.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::directive::normalize_option;
use super::{
    check_line, check_token, Directive, JobOptions, Memory, SpecError, Timeout, ValueError,
    Walltime, WorkerKind,
};

// What a job gets when its options leave a part out.
pub(super) const DEFAULT_JOB_NAME: &str = "drover-worker";
pub(super) const DEFAULT_LOG_DIRECTORY: &str = "drover-logs";
pub(super) const DEFAULT_SHEBANG: &str = "#!/usr/bin/env bash";
pub(super) const DEFAULT_DEATH_TIMEOUT: Duration = Duration::from_secs(60);
/// The default walltime margin is a quarter of the walltime, at most this.
pub(super) const MAX_DEFAULT_MARGIN: Duration = Duration::from_secs(60);
/// The default stagger is a tenth of the walltime, at most this.
pub(super) const MAX_DEFAULT_STAGGER: Duration = Duration::from_secs(300);
/// Half an hour, as dask-jobqueue.
pub(super) const DEFAULT_WALLTIME: Walltime = Walltime::from_mins(30);
pub(super) const DEFAULT_MEMORY: Memory = Memory::from_mib(1024);

pub(super) fn field<T>(name: &'static str, r: Result<T, ValueError>) -> Result<T, SpecError> {
    r.map_err(|e| SpecError::invalid(name, e))
}

/// The most cores (or processes) one job may ask for: more than any node.
pub const MAX_JOB_CORES: u32 = 65_536;

pub(super) fn positive(name: &'static str, value: u32) -> Result<u32, SpecError> {
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

pub(super) fn token(
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

pub(super) fn path(name: &'static str, value: PathBuf) -> Result<PathBuf, SpecError> {
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
pub(super) fn scratch_path(value: PathBuf) -> Result<PathBuf, SpecError> {
    if value.to_string_lossy().starts_with('$') {
        return path("local-directory", value.clone()).map(|_| value);
    }
    path("local-directory", value)
}

pub(super) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

pub(super) fn lines(name: &'static str, values: Vec<String>) -> Result<Vec<String>, SpecError> {
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
pub(super) fn resource(
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
pub(super) struct Size {
    pub(super) cores: u32,
    pub(super) processes: u32,
    pub(super) nodes: u32,
    pub(super) memory: Memory,
    pub(super) job_cpu: u32,
    pub(super) job_mem: Memory,
    pub(super) gres: Option<String>,
    pub(super) gpus: Option<String>,
}

impl Size {
    pub(super) fn check(o: &mut JobOptions) -> Result<Size, SpecError> {
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
pub(super) struct Names {
    pub(super) queue: Option<String>,
    pub(super) account: Option<String>,
    pub(super) qos: Option<String>,
    pub(super) interface: Option<String>,
    pub(super) job_name: String,
}

impl Names {
    pub(super) fn check(o: &mut JobOptions) -> Result<Names, SpecError> {
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
pub(super) fn job_name(name: String) -> Result<String, SpecError> {
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
pub(super) fn interface(i: String) -> Result<String, SpecError> {
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
pub(super) struct Paths {
    pub(super) log_directory: PathBuf,
    pub(super) local_directory: Option<PathBuf>,
    pub(super) scheduler_file: Option<PathBuf>,
    pub(super) template: Option<PathBuf>,
    pub(super) drover_bin: PathBuf,
    pub(super) python: PathBuf,
}

impl Paths {
    pub(super) fn check(o: &mut JobOptions) -> Result<Paths, SpecError> {
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
pub(super) struct ScriptParts {
    pub(super) directives: Vec<Directive>,
    pub(super) skip: Vec<String>,
    pub(super) prologue: Vec<String>,
    pub(super) epilogue: Vec<String>,
    pub(super) shebang: String,
    pub(super) worker_extra_args: Vec<String>,
}

impl ScriptParts {
    pub(super) fn check(o: &mut JobOptions) -> Result<ScriptParts, SpecError> {
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
pub(super) struct Timing {
    pub(super) walltime: Walltime,
    pub(super) death_timeout: Timeout,
    pub(super) margin: Timeout,
    pub(super) stagger: Timeout,
}

impl Timing {
    pub(super) fn check(o: &mut JobOptions) -> Result<Timing, SpecError> {
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
pub(super) fn dask_module(name: Option<String>) -> Result<String, SpecError> {
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
pub(super) fn worker_resources(
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
