//! `drover cluster up --scheduler-job`: the pool itself (its scheduler and
//! reconcile loop) runs as a small Slurm job of its own, on its journal, so
//! that nothing of the pool stays on the login node. Before that job's time
//! limit it submits its successor (the same script) and, once the successor
//! runs, hands over: it stops without closing anything, the successor takes
//! the journal (locked until then) and continues the pool, and the workers
//! follow it through the scheduler file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use drover::cluster::SlurmCluster;
use drover::config::{JobSpec, Walltime};
use drover::slurm::{JobId, JobRef, JobState, Slurm, SubmitOptions};

use super::error::{CliError, CliResult, Context};

/// How often the login side and a handing-over job look again.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The environment variable that carries the scheduler job's script to the
/// job itself, for its successor.
const SCRIPT_ENV: &str = "DROVER_SCHEDULER_JOB_SCRIPT";

/// Flags the job drops from the login command: the job names its own
/// scheduler address (the node's side of the workers' network).
const LOGIN_ONLY: [&str; 4] = [
    "--scheduler-job",
    "--detach",
    "--scheduler-interface",
    "--scheduler-host",
];

/// How long before its time limit a scheduler job hands over: the
/// workers' replacement lead, and half a minute for the successor to start.
pub fn handover_lead(replace_lead: Duration) -> Duration {
    replace_lead + Duration::from_secs(30)
}

/// The login side: writes and submits the scheduler job, waits until its
/// pool is ready, and prints how to reach it.
pub async fn submit(
    spec: &JobSpec,
    journal: &Path,
    (walltime, lead): (Walltime, Duration),
    slurm: &dyn Slurm,
    wait: Duration,
) -> CliResult {
    if walltime.as_duration() < lead * 2 {
        return Err(CliError::usage(format!(
            "--scheduler-job-walltime {walltime} is too short: each scheduler job hands over {} before its end; give at least {}",
            humantime::format_duration(lead),
            humantime::format_duration(lead * 2)
        )));
    }
    let file = spec
        .scheduler_file
        .clone()
        .unwrap_or_else(|| with_suffix(journal, ".scheduler.json"));
    let name = format!("{}-scheduler", spec.job_name);
    let script_path = spec.log_directory.join(format!("{name}.sbatch"));
    let script = render(spec, &name, walltime, &file, &script_path)?;
    // Through the checked directory: never through a link another user
    // planted under that predictable name.
    spec.ensure_log_directory()
        .with_context(|| format!("creating {}", spec.log_directory.display()))?
        .write_file(&format!("{name}.sbatch"), script.as_bytes())
        .with_context(|| format!("writing {}", script_path.display()))?;
    let job = slurm
        .submit(&script, &SubmitOptions::default())
        .await
        .context("submitting the scheduler job")?;
    println!(
        "scheduler job {job} ({name}), script {}",
        script_path.display()
    );
    let log = spec.log_directory.join(format!("{name}-{job}.out"));
    wait_ready(slurm, (&name, job), &file, &log, wait).await?;
    println!("export DROVER_SCHEDULER_FILE={}", file.display());
    println!("ready: drover status --scheduler-file {}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// The scheduler job's script: one core, the workers' partition and
/// account, `drover cluster up` as the login command had it, inside.
fn render(
    spec: &JobSpec,
    name: &str,
    walltime: Walltime,
    file: &Path,
    script_path: &Path,
) -> Result<String, CliError> {
    let mut argv: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let flag = arg.split('=').next().unwrap_or_default();
        if LOGIN_ONLY.contains(&flag) || flag == "--scheduler-job-walltime" {
            let takes_value = !matches!(flag, "--scheduler-job" | "--detach");
            if takes_value && !arg.contains('=') {
                args.next();
            }
            continue;
        }
        argv.push(arg);
    }
    if spec.scheduler_file.is_none() {
        argv.extend(["--scheduler-file".into(), file.display().to_string()]);
    }
    if let Some(interface) = &spec.interface {
        argv.extend(["--scheduler-interface".into(), interface.clone()]);
    }
    argv.push("--scheduler-job-inside".into());
    let exe = std::env::current_exe().context("finding the drover executable")?;
    let quote = |s: &str| {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .map_err(|_| CliError::usage(format!("an argument holds a NUL byte: {s:?}")))
    };
    let command: Vec<String> = std::iter::once(exe.display().to_string())
        .chain(argv)
        .map(|a| quote(&a))
        .collect::<Result<_, _>>()?;
    let mut lines = vec![
        "#!/usr/bin/env bash".to_string(),
        format!("#SBATCH --job-name={name}"),
        format!(
            "#SBATCH --output={}",
            spec.log_directory.join(format!("{name}-%j.out")).display()
        ),
        format!("#SBATCH --time={walltime}"),
        "#SBATCH --ntasks=1".into(),
        "#SBATCH --cpus-per-task=1".into(),
        "#SBATCH --mem=1G".into(),
    ];
    if let Some(queue) = &spec.queue {
        lines.push(format!("#SBATCH --partition={queue}"));
    }
    if let Some(account) = &spec.account {
        lines.push(format!("#SBATCH --account={account}"));
    }
    lines.push(format!(
        "export {SCRIPT_ENV}={}",
        quote(&script_path.display().to_string())?
    ));
    lines.push(format!("exec {}", command.join(" ")));
    Ok(lines.join("\n") + "\n")
}

/// Waits until the scheduler job's pool is up, as its own API says: a
/// size asked for and that many workers registered. Fails with the job's
/// log when the job ends first or the wait runs out.
async fn wait_ready(
    slurm: &dyn Slurm,
    (name, job): (&str, JobId),
    file: &Path,
    log: &Path,
    wait: Duration,
) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if pool_up(file).await {
            return Ok(());
        }
        let state = slurm
            .jobs(Some(name))
            .await
            .ok()
            .and_then(|jobs| jobs.into_iter().find(|j| j.job == JobRef::Job(job)))
            .map(|j| j.state);
        let ended = state.as_ref().is_some_and(|s| !s.is_active());
        if ended || tokio::time::Instant::now() > deadline {
            let why = match state {
                Some(s) if ended => format!("ended {s}"),
                _ => format!("is not ready after {}", humantime::format_duration(wait)),
            };
            let text = drover::private_fs::read::tail_lines(log, 40).unwrap_or_default();
            return Err(CliError::failure(format!(
                "the scheduler job {job} {why}; its log {}:\n{text}",
                log.display()
            )));
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Whether the pool behind scheduler file `file` is up: it answers, a size
/// was asked for, and that many workers registered (with Dask too, for a
/// Dask pool), as `cluster up` itself waits for. Not yet, when the file
/// is not there or not ours (`from_path` checks it) or no one answers.
async fn pool_up(file: &Path) -> bool {
    let Ok(client) = drover::client::SchedulerClient::from_path(file) else {
        return false;
    };
    match client.cluster().await {
        Ok(s) => {
            let dask_up = s
                .dask
                .as_ref()
                .is_none_or(|d| d.workers.unwrap_or(0) >= s.target_workers);
            s.sized && s.registered >= s.target_workers && dask_up
        }
        Err(_) => false,
    }
}

/// Inside the scheduler job: resolves once a successor runs, shortly
/// before this job's time limit (`lead` before it). Never resolves outside
/// a job, or when the job's end cannot be read.
pub async fn successor_running(slurm: &dyn Slurm, lead: Duration) -> JobId {
    let own = std::env::var("SLURM_JOB_ID")
        .ok()
        .and_then(|id| id.parse::<u64>().ok());
    let script = std::env::var_os(SCRIPT_ENV).map(PathBuf::from);
    let (Some(own), Some(script)) = (own, script) else {
        return std::future::pending().await;
    };
    let own = JobRef::Job(JobId::new(own));
    loop {
        let left = match slurm.time_left(own).await {
            Ok(Some(left)) => left,
            _ => Duration::from_secs(30),
        };
        if left <= lead {
            break;
        }
        tokio::time::sleep((left - lead).min(Duration::from_secs(30))).await;
    }
    loop {
        match submit_successor(slurm, &script).await {
            Ok(job) => return job,
            Err(e) => {
                tracing::warn!(
                    error = format!("{:#}", e.error()),
                    "cannot start the successor scheduler job; trying again"
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Submits the successor and waits until Slurm runs it.
async fn submit_successor(slurm: &dyn Slurm, script: &Path) -> Result<JobId, CliError> {
    let text =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let job = slurm
        .submit(&text, &SubmitOptions::default())
        .await
        .context("submitting the successor")?;
    tracing::info!(%job, "the time limit nears: successor scheduler job submitted");
    let name = std::env::var("SLURM_JOB_NAME").ok();
    loop {
        // A failed listing is no reason to submit another successor: the
        // one submitted is watched until it runs or ends.
        let listed = match slurm.jobs(name.as_deref()).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(%job, error = %e, "cannot list the successor; watching on");
                tokio::time::sleep(LOOK_EVERY).await;
                continue;
            }
        };
        let state = listed
            .into_iter()
            .find(|j| j.job == JobRef::Job(job))
            .map(|j| j.state);
        match state {
            Some(JobState::Running) => return Ok(job),
            Some(s) if !s.is_active() => {
                return Err(CliError::failure(format!("the successor {job} ended {s}")))
            }
            _ => tokio::time::sleep(LOOK_EVERY).await,
        }
    }
}

/// Inside the scheduler job: leaves the pool to `successor`.
pub fn hand_over(cluster: &SlurmCluster, successor: JobId) -> ExitCode {
    cluster.hand_over();
    println!("handed the pool over to scheduler job {successor}");
    ExitCode::SUCCESS
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
