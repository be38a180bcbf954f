//! `SlurmCli`: the `Slurm` trait over Slurm's command-line tools, run as
//! async subprocesses with a time limit, Slurm's stderr kept verbatim.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{
    expand_tasks, JobId, JobInfo, JobRef, JobState, Slurm, SlurmError, SubmitOptions, TestVerdict,
};

/// The default limit on one Slurm command; `DROVER_SLURM_TIMEOUT` (seconds)
/// overrides it.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Slurm through `sbatch`, `scancel` and friends.
#[derive(Debug, Clone)]
pub struct SlurmCli {
    conf: Option<PathBuf>,
    timeout: Duration,
    calls: Arc<AtomicU64>,
}

impl Default for SlurmCli {
    fn default() -> Self {
        Self::new()
    }
}

/// What a finished command left behind.
struct Output {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

impl SlurmCli {
    /// Slurm as the environment configures it (`SLURM_CONF` or the default).
    pub fn new() -> Self {
        let timeout = std::env::var("DROVER_SLURM_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT);
        SlurmCli {
            conf: None,
            timeout,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many Slurm commands this client (and its clones) has run.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The `slurm.conf` it passes to commands, if one was set.
    pub fn conf(&self) -> Option<&PathBuf> {
        self.conf.as_ref()
    }

    /// Uses the `slurm.conf` at `path` for every command.
    pub fn with_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.conf = Some(path.into());
        self
    }

    /// Limits each command to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, SlurmError> {
        let command = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(conf) = &self.conf {
            cmd.env("SLURM_CONF", conf);
        }
        tracing::debug!(%command, "running Slurm command");
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut child = cmd.spawn().map_err(|cause| SlurmError::Spawn {
            command: command.clone(),
            cause,
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input is not our error.
            let _ = pipe.write_all(text.as_bytes()).await;
        }
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| SlurmError::TimedOut {
                command: command.clone(),
                secs: self.timeout.as_secs(),
            })?
            .map_err(|cause| SlurmError::Spawn {
                command: command.clone(),
                cause,
            })?;
        Ok(Output {
            success: out.status.success(),
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        })
    }

    async fn run_ok(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, SlurmError> {
        let out = self.run(program, args, stdin).await?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(SlurmError::Failed {
                command: std::iter::once(program)
                    .chain(args.iter().copied())
                    .collect::<Vec<_>>()
                    .join(" "),
                status: out.status,
                stderr: out.stderr,
            })
        }
    }
}

#[async_trait::async_trait]
impl Slurm for SlurmCli {
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError> {
        let mut args = vec!["--parsable".to_string()];
        if options.hold {
            args.push("--hold".into());
        }
        if let Some(n) = options.array {
            args.push(format!("--array=0-{}", n.saturating_sub(1)));
        }
        if !options.exclude.is_empty() {
            args.push(format!("--exclude={}", options.exclude.join(",")));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdout = self.run_ok("sbatch", &args, Some(script)).await?;
        stdout.parse().map_err(|_| SlurmError::Unexpected {
            command: "sbatch --parsable".into(),
            output: stdout.trim().to_string(),
        })
    }

    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError> {
        let out = self.run("sbatch", &["--test-only"], Some(script)).await?;
        let message = [out.stderr.trim(), out.stdout.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Ok(TestVerdict {
            accepted: out.success,
            message,
        })
    }

    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = jobs.iter().map(JobRef::to_string).collect();
        let args: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.run_ok("scancel", &args, None).await.map(drop)
    }

    async fn jobs(&self) -> Result<Vec<JobInfo>, SlurmError> {
        let out = self.run_ok("squeue", &["--json"], None).await?;
        parse_squeue_json(&out).map_err(|e| SlurmError::Unexpected {
            command: "squeue --json".into(),
            output: e,
        })
    }

    async fn time_left(&self, job: JobRef) -> Result<Option<Duration>, SlurmError> {
        let id = job.to_string();
        let out = self
            .run_ok("squeue", &["-h", "-j", &id, "-o", "%L"], None)
            .await?;
        // %L prints Slurm's time format with leading zero fields dropped
        // ("29:57" is 29 min 57 s), or words such as UNLIMITED.
        Ok(out
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<crate::config::Walltime>().ok())
            .map(|w| w.as_duration()))
    }
}

/// The parts of `squeue --json` (openapi v0.0.38) drover reads.
#[derive(Deserialize)]
struct SqueueJson {
    jobs: Vec<SqueueJob>,
}

#[derive(Deserialize)]
struct SqueueJob {
    job_id: u64,
    #[serde(default)]
    array_job_id: u64,
    #[serde(default)]
    array_task_id: Option<u32>,
    #[serde(default)]
    array_task_string: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    comment: Option<String>,
    job_state: String,
    #[serde(default)]
    state_reason: Option<String>,
    #[serde(default)]
    nodes: Option<String>,
    /// A wait status: the exit code is in the high byte.
    #[serde(default)]
    exit_code: Option<i64>,
}

/// Parses `squeue --json` into one `JobInfo` per job or array task.
pub(crate) fn parse_squeue_json(text: &str) -> Result<Vec<JobInfo>, String> {
    let parsed: SqueueJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(parsed.jobs.len());
    for j in parsed.jobs {
        let state = JobState::from(j.job_state.as_str());
        let reason = j.state_reason.filter(|r| !r.is_empty() && r != "None");
        let nodes = j.nodes.filter(|n| !n.is_empty());
        let exit_code = if state.is_active() {
            None
        } else {
            j.exit_code.map(|status| ((status >> 8) & 0xff) as i32)
        };
        let info = |job: JobRef, job_id: Option<JobId>| JobInfo {
            job,
            job_id,
            name: j.name.clone(),
            comment: j.comment.clone().unwrap_or_default(),
            state: state.clone(),
            reason: reason.clone(),
            nodes: nodes.clone(),
            exit_code,
        };
        let array = JobId::new(j.array_job_id);
        match (j.array_job_id, j.array_task_id) {
            (0, _) => out.push(info(
                JobRef::Job(JobId::new(j.job_id)),
                Some(JobId::new(j.job_id)),
            )),
            (_, Some(task)) => out.push(info(
                JobRef::Task { array, task },
                Some(JobId::new(j.job_id)),
            )),
            (_, None) => {
                // Tasks not yet split off their array: one entry per task.
                for task in expand_tasks(j.array_task_string.as_deref().unwrap_or_default()) {
                    out.push(info(JobRef::Task { array, task }, None));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_json_gives_one_entry_per_job_and_task() {
        let text = r#"{"meta":{},"errors":[],"jobs":[
          {"job_id":25,"array_job_id":25,"array_task_id":null,"array_task_string":"2-3","name":"w","comment":"drover:abc","job_state":"PENDING","state_reason":"Resources","nodes":"","exit_code":0},
          {"job_id":26,"array_job_id":25,"array_task_id":0,"array_task_string":"","name":"w","comment":"drover:abc","job_state":"FAILED","state_reason":"NonZeroExitCode","nodes":"node1","exit_code":768},
          {"job_id":9,"array_job_id":0,"array_task_id":null,"name":"x","job_state":"RUNNING","state_reason":"None","nodes":"node2","exit_code":0}
        ]}"#;
        let jobs = parse_squeue_json(text).unwrap();
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs[0].job.to_string(), "25_2");
        assert_eq!(jobs[0].reason.as_deref(), Some("Resources"));
        assert_eq!(jobs[0].job_id, None);
        assert_eq!(jobs[1].job.to_string(), "25_3");
        assert_eq!(jobs[2].job.to_string(), "25_0");
        assert_eq!(jobs[2].job_id, Some(JobId::new(26)));
        assert_eq!(jobs[2].state, JobState::Failed);
        assert_eq!(jobs[2].exit_code, Some(3));
        assert_eq!(jobs[3].job.to_string(), "9");
        assert_eq!(jobs[3].reason, None);
        assert_eq!(jobs[3].exit_code, None);
    }
}
