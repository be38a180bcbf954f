//! `drover submit`, `drover wait`, `drover task ...` and `drover graph ...`:
//! work for a running pool, through its scheduler's API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{presets::NOTHING, Table};
use drover::client::SchedulerClient;
use drover::config::Timeout;
use drover::tasks::graph::Graph;
use drover::tasks::{Dep, TaskId, TaskInfo, TaskSpec, TaskState};

use super::error::{CliError, CliResult, Context};

/// How often `wait` asks.
const WAIT_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerFileArg {
    /// The cluster's scheduler file.
    #[arg(
        long,
        value_name = "FILE",
        env = "DROVER_SCHEDULER_FILE",
        global = true
    )]
    scheduler_file: Option<PathBuf>,
}

impl SchedulerFileArg {
    fn client(&self) -> Result<SchedulerClient, CliError> {
        let path = self.scheduler_file.as_ref().ok_or_else(|| {
            CliError::usage("which pool? pass --scheduler-file FILE or set DROVER_SCHEDULER_FILE")
        })?;
        Ok(SchedulerClient::from_path(path)?)
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

/// Checks an index range such as `0-999` or `0-9,20`.
fn parse_range(s: &str) -> Result<String, String> {
    let well_formed = s.split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b),
        None => part.parse::<u32>().is_ok(),
    });
    if well_formed {
        Ok(s.to_string())
    } else {
        Err("expected indices and ranges such as 0-999 or 0-9,20 (each range low-high)".into())
    }
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pool: SchedulerFileArg,
    /// A name for the task (dependents and `drover task` use it).
    #[arg(long)]
    name: Option<String>,
    /// Cores it needs.
    #[arg(long, default_value_t = 1)]
    cores: u32,
    /// Memory it needs (such as 2GiB): it runs only on a worker with that
    /// much of its memory not held by its other tasks.
    #[arg(long, value_name = "SIZE")]
    memory: Option<drover::config::Memory>,
    /// GPUs it needs: it runs only on a worker with that many GPUs free,
    /// with CUDA_VISIBLE_DEVICES naming those it holds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    gpus: u32,
    /// A named resource it needs, NAME=AMOUNT (repeatable): it runs only
    /// where the worker has that much of it free.
    #[arg(long = "resource", value_name = "NAME=AMOUNT", value_parser = drover::protocol::parse_resource)]
    resources: Vec<(String, u64)>,
    /// The pool group it must run in.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Runs it may have again after failing.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Time limit, e.g. 90s or 5m.
    #[arg(long, value_name = "TIME")]
    time_limit: Option<Timeout>,
    /// Environment variable for it (repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Working directory on the worker.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// A task that must succeed first (repeatable), e.g. t12.
    #[arg(long, value_name = "TASK")]
    after: Vec<TaskId>,
    /// Submit one task per index of RANGE (e.g. 0-999 or 0-9,20), with
    /// DROVER_TASK_INDEX set and {{index}} in the command replaced.
    #[arg(long, value_name = "RANGE", conflicts_with = "each_line", value_parser = parse_range)]
    array: Option<String>,
    /// Submit one task per line of FILE, with DROVER_TASK_INDEX and
    /// DROVER_TASK_LINE set and {{index}}, {{line}} replaced.
    #[arg(long, value_name = "FILE")]
    each_line: Option<PathBuf>,
    /// Wait for the tasks and print their results.
    #[arg(long)]
    wait: bool,
    /// The command.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Task number `i` of an array or a file: `{{index}}` and `{{line}}`
/// filled in (named by variable inside a shell script: lines are data).
fn expand(base: &TaskSpec, i: u32, line: Option<String>) -> TaskSpec {
    let mut t = base.clone();
    let fill = |s: &str| {
        let s = s.replace("{{index}}", &i.to_string());
        match &line {
            Some(l) => s.replace("{{line}}", l),
            None => s,
        }
    };
    let refer = |s: &str| {
        s.replace("{{index}}", "${DROVER_TASK_INDEX}")
            .replace("{{line}}", "${DROVER_TASK_LINE}")
    };
    let roles = drover::tasks::placeholders::roles(&t.argv);
    t.argv = t
        .argv
        .iter()
        .zip(roles)
        .map(|(a, role)| match role {
            drover::tasks::placeholders::Role::ShellScript => refer(a),
            _ => fill(a),
        })
        .collect();
    t.env.insert("DROVER_TASK_INDEX".into(), i.to_string());
    if let Some(l) = line {
        t.env.insert("DROVER_TASK_LINE".into(), l);
    }
    t.name = t.name.as_ref().map(|n| format!("{n}-{i}"));
    t
}

/// The most bytes of an `--each-line` file (a million lines of 64 bytes).
const MAX_EACH_LINE_BYTES: u64 = 64 << 20;

/// The `--each-line` file, refused past `MAX_EACH_LINE_BYTES`.
fn read_lines(file: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let bad = |why: String| {
        CliError::usage(format!(
            "cannot read --each-line file {}: {why}",
            file.display()
        ))
    };
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_EACH_LINE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_EACH_LINE_BYTES {
        return Err(bad(format!(
            "it is over {MAX_EACH_LINE_BYTES} bytes; split it"
        )));
    }
    Ok(text)
}

/// A line is data: `{{line}}` may fill an argument or become a variable in
/// a shell script, but never text in another language's code (`python -c`)
/// or where drover cannot tell, since a line could then run as code.
fn line_into_code(argv: &[String]) -> Result<(), CliError> {
    use drover::tasks::placeholders::{roles, Role};
    let code = argv.iter().zip(roles(argv)).find(|(a, role)| {
        a.contains("{{line}}") && matches!(role, Role::OtherCode | Role::Unclear)
    });
    match code {
        Some((arg, _)) => Err(CliError::usage(format!(
            "--each-line: `{{{{line}}}}` in `{}` would put a line of the file into code, where it could run; read it from the environment instead (DROVER_TASK_LINE, e.g. os.environ[\"DROVER_TASK_LINE\"] in Python)",
            drover::protocol::text::one_line(arg, 80)
        ))),
        None => Ok(()),
    }
}

pub async fn submit(args: SubmitArgs) -> CliResult {
    let base = TaskSpec {
        name: args.name.clone(),
        argv: args.command.clone(),
        env: args.env.iter().cloned().collect(),
        cwd: args.cwd.clone(),
        cores: args.cores,
        memory_bytes: args.memory.map(|m| m.bytes()),
        gpus: args.gpus,
        resources: args.resources.iter().cloned().collect(),
        group: args.group.clone(),
        time_limit_ms: args
            .time_limit
            .map(|t| u64::try_from(t.duration().as_millis()).unwrap_or(u64::MAX)),
        retries: args.retries,
        deps: args.after.iter().map(|t| Dep::Id(*t)).collect(),
    };
    let items: Vec<(u32, Option<String>)> = match (&args.array, &args.each_line) {
        (Some(range), _) => {
            let indices = drover::slurm::expand_tasks(range);
            if indices.is_empty() {
                return Err(CliError::usage(format!(
                    "invalid value `{range}` for --array: expected ranges such as 0-999 or 0-9,20"
                )));
            }
            indices.into_iter().map(|i| (i, None)).collect()
        }
        (None, Some(file)) => {
            line_into_code(&base.argv)?;
            read_lines(file)?
                .lines()
                .enumerate()
                .map(|(i, l)| (i as u32, Some(l.to_string())))
                .collect()
        }
        (None, None) => Vec::new(),
    };
    let specs: Vec<TaskSpec> =
        if items.is_empty() && args.array.is_none() && args.each_line.is_none() {
            vec![base]
        } else {
            items
                .into_iter()
                .map(|(i, line)| expand(&base, i, line))
                .collect()
        };
    // Input is checked before the scheduler is asked anything.
    let client = args.pool.client()?;
    let ids = client.submit(&specs).await.context("submitting")?;
    match ids.as_slice() {
        [one] => println!("{one}"),
        [first, .., last] => println!("submitted {} tasks: {first} to {last}", ids.len()),
        [] => println!("submitted nothing"),
    }
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let tasks = client.wait_tasks(Some(&ids), WAIT_EVERY).await?;
    print!("{}", results(&tasks));
    Ok(exit_for(&tasks))
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pool: SchedulerFileArg,
    /// Tasks to wait for (default: all).
    tasks: Vec<TaskId>,
    /// Give up after this long.
    #[arg(long, value_name = "TIME")]
    timeout: Option<Timeout>,
}

pub async fn wait(args: WaitArgs) -> CliResult {
    let client = args.pool.client()?;
    let ids = (!args.tasks.is_empty()).then_some(args.tasks.as_slice());
    let waiting = client.wait_tasks(ids, WAIT_EVERY);
    let tasks = match args.timeout {
        Some(t) => tokio::time::timeout(t.duration(), waiting)
            .await
            .map_err(|_| CliError::failure(format!("tasks still running after {t}")))??,
        None => waiting.await?,
    };
    print!("{}", summary(&tasks));
    Ok(exit_for(&tasks))
}

fn exit_for(tasks: &[TaskInfo]) -> ExitCode {
    if tasks.iter().all(|t| t.state == TaskState::Succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn summary(tasks: &[TaskInfo]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        *by.entry(t.state.to_string()).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!("{} tasks: {}\n", tasks.len(), parts.join(", "))
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.trim().lines().next().unwrap_or_default();
    let line = if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    };
    shown(&line)
}

/// Text from the wire as one terminal line (no escape sequences).
fn shown(text: &str) -> String {
    drover::protocol::text::one_line(text, 200)
}

/// How often a task ran, and how many of those runs were not its own
/// doing (Slurm stopped its worker's job, or its worker was lost): "3
/// (1 stopped, 1 lost)".
fn runs(task: &TaskInfo) -> String {
    let mut not_its_own = Vec::new();
    if task.stopped > 0 {
        not_its_own.push(format!("{} stopped", task.stopped));
    }
    if task.lost > 0 {
        not_its_own.push(format!("{} lost", task.lost));
    }
    if task.grown > 0 {
        not_its_own.push(format!("{} out of memory", task.grown));
    }
    match not_its_own.is_empty() {
        true => task.attempts.to_string(),
        false => format!("{} ({})", task.attempts, not_its_own.join(", ")),
    }
}

/// One row per task: id, name, state, runs, worker, exit code, output.
fn results(tasks: &[TaskInfo]) -> String {
    let mut t = Table::new();
    t.load_style(NOTHING).set_header([
        "TASK", "NAME", "STATE", "RUNS", "WORKER", "EXIT", "OUTPUT", "REASON",
    ]);
    for task in tasks {
        let out = task.output.as_ref();
        t.add_row([
            task.id.to_string(),
            shown(task.name.as_deref().unwrap_or_default()),
            task.state.to_string(),
            runs(task),
            task.worker.map(|w| w.to_string()).unwrap_or_default(),
            out.and_then(|o| o.exit_code)
                .map(|c| c.to_string())
                .unwrap_or_default(),
            out.map(|o| first_line(&o.stdout, 40)).unwrap_or_default(),
            shown(task.reason.as_deref().unwrap_or_default()),
        ]);
    }
    format!("{t}\n{}", summary(tasks))
}

#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// Every task, with its state and output.
    List {
        #[command(flatten)]
        pool: SchedulerFileArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One task in full, as JSON.
    Show {
        #[command(flatten)]
        pool: SchedulerFileArg,
        /// The task, e.g. t12.
        task: TaskId,
    },
    /// A task's standard output and the end of its standard error.
    Logs {
        #[command(flatten)]
        pool: SchedulerFileArg,
        /// The task, e.g. t12.
        task: TaskId,
    },
    /// Cancel a task and what depends on it.
    Cancel {
        #[command(flatten)]
        pool: SchedulerFileArg,
        /// The task, e.g. t12.
        task: TaskId,
    },
}

pub async fn task(command: TaskCommand) -> CliResult {
    match command {
        TaskCommand::List { pool, json } => {
            let list = pool.client()?.tasks(None, false).await?;
            if json {
                println!("{}", to_json(&list)?);
            } else {
                print!("{}", results(&list.tasks));
            }
        }
        TaskCommand::Show { pool, task } => {
            let info = pool.client()?.task(task).await?;
            println!("{}", to_json(&info)?);
        }
        TaskCommand::Logs { pool, task } => {
            let info = pool.client()?.task(task).await?;
            match info.output {
                Some(o) => {
                    println!("==> {task} stdout <==\n{}", o.stdout.trim_end());
                    println!("==> {task} stderr (end) <==\n{}", o.stderr_tail.trim_end());
                }
                None => println!("{task} has not run yet ({})", info.state),
            }
        }
        TaskCommand::Cancel { pool, task } => {
            pool.client()?.cancel_task(task).await?;
            println!("cancelled {task}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub enum GraphCommand {
    /// Run a graph file on the pool and print every task's result.
    Run {
        #[command(flatten)]
        pool: SchedulerFileArg,
        /// The graph file (.toml or .json).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a graph file as Graphviz DOT (and SVG when Graphviz is installed).
    Dot {
        /// The graph file (.toml or .json).
        file: PathBuf,
        /// Write the DOT here instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also render it as SVG with Graphviz's `dot`.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
}

pub async fn graph(command: GraphCommand) -> CliResult {
    match command {
        GraphCommand::Run { pool, file, json } => {
            let graph = Graph::load(&file)?;
            let specs = graph.specs()?;
            let client = pool.client()?;
            let ids = client
                .submit(&specs)
                .await
                .context("submitting the graph")?;
            let tasks = client.wait_tasks(Some(&ids), WAIT_EVERY).await?;
            if json {
                println!("{}", to_json(&tasks)?);
            } else {
                print!("{}", results(&tasks));
            }
            Ok(exit_for(&tasks))
        }
        GraphCommand::Dot { file, output, svg } => {
            let dot = Graph::load(&file)?.dot()?;
            match &output {
                Some(path) => std::fs::write(path, &dot)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{dot}"),
            }
            if let Some(path) = svg {
                let rendered = std::process::Command::new("dot")
                    .args(["-Tsvg", "-o"])
                    .arg(&path)
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .and_then(|mut c| {
                        use std::io::Write;
                        c.stdin.take().expect("piped").write_all(dot.as_bytes())?;
                        c.wait()
                    });
                match rendered {
                    Ok(s) if s.success() => eprintln!("wrote {}", path.display()),
                    Ok(s) => return Err(CliError::failure(format!("Graphviz `dot` failed ({s})"))),
                    Err(e) => return Err(CliError::failure(format!(
                        "cannot run Graphviz `dot` for SVG ({e}); install graphviz, or use the DOT output"
                    ))),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `value` as pretty JSON, for `--json`.
fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).context("printing JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_say_how_many_were_not_the_tasks_own_doing() {
        let task = |stopped: u32, lost: u32| -> TaskInfo {
            serde_json::from_value(serde_json::json!({
                "id": 1, "name": null, "argv": ["x"], "cores": 1, "state": "succeeded",
                "attempts": 1 + stopped + lost, "stopped": stopped, "lost": lost,
                "worker": null, "deps": [], "output": null, "reason": null,
            }))
            .unwrap()
        };
        assert_eq!(runs(&task(0, 0)), "1");
        assert_eq!(runs(&task(1, 0)), "2 (1 stopped)");
        assert_eq!(runs(&task(2, 1)), "4 (2 stopped, 1 lost)");
    }
}
