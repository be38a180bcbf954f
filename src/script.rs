//! Worker job scripts: a `JobSpec` rendered through a tera template (the
//! built-in one or a user's file) into the exact text given to `sbatch`.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::JobSpec;
use crate::exit::{ExitStatus, USAGE};

/// The built-in job script template.
pub const DEFAULT_TEMPLATE: &str = include_str!("../templates/worker.sbatch.tera");

/// How the built-in template is named in errors.
pub const DEFAULT_TEMPLATE_NAME: &str = "templates/worker.sbatch.tera (built in)";

/// A template that could not be read or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The user's template file could not be read.
    #[error("template {}: cannot read it: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
    /// The template file is another user's, or others may change it: it
    /// would become our job script.
    #[error(transparent)]
    Untrusted(crate::private_fs::FsError),
    /// The template has a syntax error or uses something the context lacks.
    #[error("template {name}{}: {message}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Render {
        /// The template's file name.
        name: String,
        /// The line at fault, when it can be told.
        line: Option<usize>,
        /// Tera's explanation.
        message: String,
    },
}

impl ExitStatus for ScriptError {
    fn exit_code(&self) -> u8 {
        match self {
            ScriptError::Read { .. } | ScriptError::Render { .. } => USAGE,
            ScriptError::Untrusted(e) => e.exit_code(),
        }
    }
}

/// What a template sees. Custom templates may use any of these.
#[derive(Debug, Serialize)]
pub struct ScriptContext {
    /// First line.
    pub shebang: String,
    /// Each `#SBATCH` option, rendered (`--time=00:30:00`), after skipping.
    pub directives: Vec<String>,
    /// Slurm job name.
    pub job_name: String,
    /// Cores for the job's workers.
    pub cores: u32,
    /// Worker processes per job.
    pub processes: u32,
    /// Memory for the job's workers, in Slurm's syntax.
    pub memory: String,
    /// CPUs requested from Slurm.
    pub job_cpu: u32,
    /// Memory requested from Slurm, in Slurm's syntax.
    pub job_mem: String,
    /// Time limit, `HH:MM:SS` or `D-HH:MM:SS`.
    pub walltime: String,
    /// Partition, if set.
    pub queue: Option<String>,
    /// Account, if set.
    pub account: Option<String>,
    /// Workers' interface, if set.
    pub interface: Option<String>,
    /// Log directory.
    pub log_directory: String,
    /// Workers' scratch directory, if set.
    pub local_directory: Option<String>,
    /// Lines before the worker.
    pub prologue: Vec<String>,
    /// Lines after the worker.
    pub epilogue: Vec<String>,
    /// The shell-quoted command line that starts the worker agent.
    pub worker_command: String,
}

impl ScriptContext {
    /// The context for `spec`. Every string a template may place anywhere
    /// (`job_name`, `queue`, paths...) is shell-quoted when it needs to be,
    /// so a user template that puts one in a command still runs nothing
    /// of it; `directives` are whole `#SBATCH` lines (a comment to the
    /// shell, and no value holds a newline).
    pub fn new(spec: &JobSpec) -> Self {
        let quoted = |s: &str| shell_quote(s);
        let quoted_opt = |s: &Option<String>| s.as_deref().map(shell_quote);
        ScriptContext {
            shebang: spec.shebang.clone(),
            directives: spec
                .directives()
                .iter()
                .map(|d| d.render_styled(spec.header_style))
                .collect(),
            job_name: quoted(&spec.job_name),
            cores: spec.cores,
            processes: spec.processes,
            memory: spec.memory.to_slurm(),
            job_cpu: spec.job_cpu,
            job_mem: spec.job_mem.to_slurm(),
            walltime: spec.walltime.to_string(),
            queue: quoted_opt(&spec.queue),
            account: quoted_opt(&spec.account),
            interface: quoted_opt(&spec.interface),
            log_directory: quoted(&spec.log_directory.display().to_string()),
            local_directory: quoted_opt(
                &spec
                    .local_directory
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            prologue: spec.job_script_prologue.clone(),
            epilogue: spec.job_script_epilogue.clone(),
            worker_command: worker_command(spec),
        }
    }
}

/// The worker agent's command line, each word shell-quoted.
pub fn worker_command(spec: &JobSpec) -> String {
    let mut argv: Vec<String> = vec![spec.drover_bin.display().to_string(), "worker".into()];
    if let Some(f) = &spec.scheduler_file {
        argv.extend(["--scheduler-file".into(), f.display().to_string()]);
    }
    argv.extend([
        "--cores".into(),
        spec.cores.to_string(),
        "--memory".into(),
        spec.memory.to_string(),
        "--processes".into(),
        spec.processes.to_string(),
        "--death-timeout".into(),
        spec.death_timeout.to_string(),
        "--walltime".into(),
        spec.walltime.to_string(),
        "--walltime-margin".into(),
        spec.walltime_margin.to_string(),
        "--walltime-stagger".into(),
        spec.walltime_stagger.to_string(),
    ]);
    if let Some(i) = &spec.interface {
        argv.extend(["--interface".into(), i.clone()]);
    }
    for (name, amount) in &spec.worker_resources {
        argv.extend(["--resource".into(), format!("{name}={amount}")]);
    }
    if let Some(g) = &spec.group {
        argv.extend(["--group".into(), g.clone()]);
    }
    if spec.file_access != crate::private_fs::Access::Private {
        argv.extend(["--file-access".into(), spec.file_access.to_string()]);
    }
    if spec.kind == crate::config::WorkerKind::Dask {
        argv.extend([
            "--kind".into(),
            "dask".into(),
            "--python".into(),
            spec.python.display().to_string(),
            "--nanny".into(),
            spec.dask_nanny.to_string(),
        ]);
        if spec.dask_worker_module != crate::config::DEFAULT_DASK_WORKER_MODULE {
            argv.extend(["--dask-module".into(), spec.dask_worker_module.clone()]);
        }
    }
    // `$TMPDIR` in the scratch directory and `$SLURM_JOB_ID` in a Dask
    // name (as in dask-jobqueue's scripts) are the node's: they reach the
    // agent single-quoted, and it expands `$NAME` and `${NAME}` from its
    // environment itself. The script never evaluates a value: a `$(...)`
    // or backquote in one stays text.
    if let Some(d) = &spec.local_directory {
        argv.extend(["--local-directory".into(), d.display().to_string()]);
    }
    if let (crate::config::WorkerKind::Dask, Some(name)) = (spec.kind, &spec.dask_worker_name) {
        argv.extend(["--dask-name".into(), name.clone()]);
    }
    let mut words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    if !spec.worker_extra_args.is_empty() {
        words.push("--".into());
    }
    words.extend(spec.worker_extra_args.iter().map(|a| shell_quote(a)));
    if spec.nodes > 1 {
        // One agent per node; a node whose agent dies leaves the others
        // running (their tasks are theirs; the dead one's are requeued).
        let srun = format!(
            "srun --nodes={} --ntasks-per-node=1 --kill-on-bad-exit=0",
            spec.nodes
        );
        words.insert(0, srun);
    }
    words.join(" ")
}

/// `word` quoted for the shell as one literal word.
fn shell_quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| word.to_string())
}

/// Renders the job script for `spec` with its template.
pub fn render(spec: &JobSpec) -> Result<String, ScriptError> {
    render_with_command(spec, worker_command(spec))
}

/// Renders `spec`'s script with `command` where the worker agent would
/// start: the same directives, prologue and epilogue (`drover doctor`'s
/// probe runs so).
pub fn render_with_command(spec: &JobSpec, command: String) -> Result<String, ScriptError> {
    let (name, source) = match &spec.template {
        Some(path) => (
            path.display().to_string(),
            crate::private_fs::read_trusted(path, "template", crate::private_fs::MAX_TRUSTED_BYTES)
                .map_err(|e| match e {
                    crate::private_fs::FsError::Io { cause, .. } => ScriptError::Read {
                        path: path.clone(),
                        cause,
                    },
                    e => ScriptError::Untrusted(e),
                })?,
        ),
        None => (
            DEFAULT_TEMPLATE_NAME.to_string(),
            DEFAULT_TEMPLATE.to_string(),
        ),
    };
    let mut context = ScriptContext::new(spec);
    context.worker_command = command;
    render_template(&name, &source, &context)
}

/// Renders `source` (named `name` in errors) with `context`.
pub fn render_template(
    name: &str,
    source: &str,
    context: &ScriptContext,
) -> Result<String, ScriptError> {
    let fail = |e: tera::Error| {
        let message = error_chain(&e);
        ScriptError::Render {
            name: name.to_string(),
            line: error_line(&message, source),
            message,
        }
    };
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_template(name, source).map_err(fail)?;
    let ctx = tera::Context::from_serialize(context).map_err(fail)?;
    tera.render(name, &ctx).map_err(fail)
}

/// Tera's error and its causes, one after the other.
fn error_chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ").replace('\n', " ")
}

/// The template line an error points at: tera's own `--> L:C` for syntax
/// errors, else the first tag that mentions the backquoted name the error
/// names (an unknown variable or filter).
fn error_line(message: &str, source: &str) -> Option<usize> {
    if let Some(rest) = message.split("--> ").nth(1) {
        if let Some(line) = rest.split(':').next().and_then(|l| l.trim().parse().ok()) {
            return Some(line);
        }
    }
    let quoted = message.split('`').nth(1)?;
    let ident = quoted
        .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .find(|s| !s.is_empty())?;
    source
        .lines()
        .position(|l| (l.contains("{{") || l.contains("{%")) && l.contains(ident))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JobOptions;

    fn spec() -> JobSpec {
        JobOptions::new()
            .cores(4u32)
            .memory("8GB".parse::<crate::config::Memory>().unwrap())
            .interface("ib0")
            .log_directory("/tmp/drover-logs")
            .drover_bin("/opt/drover/bin/drover")
            .scheduler_file("/shared/sched.json")
            .job_script_prologue(vec!["module load python".to_string()])
            .job_script_epilogue(vec!["echo done".to_string()])
            .worker_extra_args(vec!["--name".to_string(), "a b".to_string()])
            .build()
            .unwrap()
    }

    #[test]
    fn default_template_renders_every_part_in_order() {
        let text = render(&spec()).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], "#!/usr/bin/env bash");
        assert_eq!(lines[1], "#SBATCH --job-name=drover-worker");
        assert!(lines.contains(&"#SBATCH --cpus-per-task=4"), "{text}");
        assert!(lines.contains(&"#SBATCH --mem=7630M"), "{text}");
        assert!(lines.contains(&"#SBATCH --time=00:30:00"), "{text}");
        let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
        assert!(pos("#SBATCH --time") < pos("module load python"));
        assert!(pos("module load python") < pos("bin/drover worker"));
        assert!(pos("bin/drover worker") < pos("echo done"));
        assert!(
            text.contains("/opt/drover/bin/drover worker --scheduler-file /shared/sched.json --cores 4 --memory 8GB --processes 1 --death-timeout 60s --walltime 00:30:00 --walltime-margin 60s --walltime-stagger 180s --interface ib0 -- --name 'a b' &"),
            "{text}"
        );
        // Slurm's walltime signal reaches the batch shell only: it is passed on.
        assert!(lines.contains(&"#SBATCH --signal=B:USR1@60"), "{text}");
        assert!(
            text.contains(r#"trap 'kill -USR1 "$drover_worker" 2>/dev/null' USR1"#),
            "{text}"
        );
        // Directives come before the first command, as sbatch requires.
        let first_command = lines.iter().position(|l| !l.starts_with('#')).unwrap();
        assert!(lines[first_command..]
            .iter()
            .all(|l| !l.starts_with("#SBATCH")));
    }

    #[test]
    fn dask_jobs_run_the_agent_as_a_dask_supervisor() {
        let spec = JobOptions::new()
            .kind(crate::config::WorkerKind::Dask)
            .python("/venvs/dask/bin/python")
            .interface("ib0")
            .drover_bin("/opt/drover/bin/drover")
            .build()
            .unwrap();
        let text = render(&spec).unwrap();
        assert!(
            text.contains(
                "--interface ib0 --kind dask --python /venvs/dask/bin/python --nanny agent &"
            ),
            "{text}"
        );
    }

    #[test]
    fn scratch_directories_and_worker_modules_reach_the_agent() {
        let spec = JobOptions::new()
            .kind(crate::config::WorkerKind::Dask)
            .local_directory("$TMPDIR/dask")
            .dask_worker_module("dask_cuda.cli.dask_cuda_worker")
            .interface("eth0:worker")
            .drover_bin("/opt/drover/bin/drover")
            .build()
            .unwrap();
        let text = render(&spec).unwrap();
        // The node's $TMPDIR, expanded there; the module named only when
        // it is not Dask's own; an interface label as Linux names it.
        assert!(text.contains("--local-directory '$TMPDIR/dask'"), "{text}");
        assert!(
            text.contains("--dask-module dask_cuda.cli.dask_cuda_worker"),
            "{text}"
        );
        assert!(text.contains("--interface eth0:worker"), "{text}");
        let plain = JobOptions::new()
            .kind(crate::config::WorkerKind::Dask)
            .drover_bin("/opt/drover/bin/drover")
            .build()
            .unwrap();
        assert!(!render(&plain).unwrap().contains("--dask-module"));
        let bad = JobOptions::new()
            .dask_worker_module("not a module!")
            .build();
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("not a Python module name"));
    }

    #[test]
    fn dask_worker_names_expand_in_the_job_and_headers_can_look_like_dask_jobqueues() {
        let spec = JobOptions::new()
            .kind(crate::config::WorkerKind::Dask)
            .dask_worker_name("test-$MY_VAR")
            .job_name("dask-worker")
            .memory("28GB".parse::<crate::config::Memory>().unwrap())
            .walltime("00:02:00".parse::<crate::config::Walltime>().unwrap())
            .header_style(crate::config::HeaderStyle::DaskJobqueue)
            .drover_bin("/opt/drover/bin/drover")
            .build()
            .unwrap();
        let text = render(&spec).unwrap();
        for line in [
            "#SBATCH -J dask-worker",
            "#SBATCH -n 1",
            "#SBATCH --mem=27G",
            "#SBATCH -t 00:02:00",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(text.contains(" --dask-name 'test-$MY_VAR' &"), "{text}");
    }

    /// Issue 29 C: every value that reaches a job script, with a payload
    /// that would run a command if the script evaluated it, is refused or
    /// stays text: the rendered script (default template, and a template
    /// that puts every variable in a command) is run and runs nothing.
    #[test]
    fn no_value_in_a_job_script_is_ever_evaluated() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("owned");
        // Without whitespace too (most fields refuse whitespace): the
        // scripts run in `dir`, so `owned` is the mark.
        let payloads = [
            "w-$(touch owned)".to_string(),
            "w-$(touch${IFS}owned)".into(),
            "w-`touch${IFS}owned`".into(),
            "w\ntouch owned".into(),
            "w';touch${IFS}owned;'".into(),
            "w\";touch${IFS}owned;\"".into(),
            "w$(touch${IFS}owned)$X${Y}".into(),
        ];
        type Set = fn(JobOptions, String) -> JobOptions;
        let fields: [(&str, Set); 11] = [
            ("job-name", |o, v| o.job_name(v)),
            ("queue", |o, v| o.queue(v)),
            ("account", |o, v| o.account(v)),
            ("qos", |o, v| o.qos(v)),
            ("interface", |o, v| o.interface(v)),
            ("log-directory", |o, v| o.log_directory(PathBuf::from(v))),
            ("local-directory", |o, v| {
                o.local_directory(PathBuf::from(v))
            }),
            ("dask-worker-name", |o, v| o.dask_worker_name(v)),
            ("worker-extra-args", |o, v| o.worker_extra_args(vec![v])),
            ("gres", |o, v| o.gres(v)),
            ("python", |o, v| o.python(PathBuf::from(v))),
        ];
        let everything = "{{ shebang }}\n{% for d in directives %}#SBATCH {{ d }}\n{% endfor %}\
            echo {{ job_name }} {{ queue }} {{ account }} {{ interface }} {{ log_directory }} \
            {{ local_directory }} {{ memory }} {{ walltime }} >/dev/null\n{{ worker_command }} &\nwait\n";
        let mut ran = 0;
        for (name, set) in fields {
            for payload in &payloads {
                let base = JobOptions::new()
                    .kind(crate::config::WorkerKind::Dask)
                    .drover_bin("/bin/true")
                    .log_directory(dir.path().join("logs"));
                let Ok(spec) = set(base, payload.clone()).build() else {
                    continue; // refused at the edge, naming the field
                };
                let mut scripts = vec![render(&spec).unwrap()];
                scripts.push(render_template("t", everything, &ScriptContext::new(&spec)).unwrap());
                for script in scripts {
                    let status = std::process::Command::new("bash")
                        .arg("-c")
                        .arg(&script)
                        .current_dir(dir.path())
                        .status()
                        .unwrap();
                    ran += 1;
                    assert!(
                        !mark.exists(),
                        "{name} = {payload:?} ran (exit {status}):\n{script}"
                    );
                }
            }
        }
        assert!(
            ran >= 20,
            "the payloads reached rendered scripts ({ran} runs)"
        );
    }

    #[test]
    fn user_templates_see_the_spec_values() {
        let out = render_template(
            "mine.tera",
            "{{ shebang }}\n#SBATCH -c {{ cores }} --time={{ walltime }}\n{{ worker_command }}\n",
            &ScriptContext::new(&spec()),
        )
        .unwrap();
        assert!(out.contains("#SBATCH -c 4 --time=00:30:00"), "{out}");
    }

    #[test]
    fn unknown_variable_is_reported_with_file_and_line() {
        let err = render_template(
            "site.tera",
            "{{ shebang }}\n#SBATCH --qos=normal\n#SBATCH -c {{ cpus }}\n",
            &ScriptContext::new(&spec()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("template site.tera, line 3:"), "{err}");
        assert!(err.contains("cpus"), "{err}");
    }

    #[test]
    fn syntax_error_is_reported_with_file_and_line() {
        let err = render_template(
            "site.tera",
            "{{ shebang }}\n\n{% for d in directives %}\n#SBATCH {{ d }\n",
            &ScriptContext::new(&spec()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("template site.tera, line 4:"), "{err}");
    }

    #[test]
    fn missing_template_file_is_named() {
        let mut s = spec();
        s.template = Some("/nonexistent/worker.tera".into());
        let err = render(&s).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/worker.tera: cannot read it"),
            "{err}"
        );
    }
}
