//! `SlurmCli`: the `Slurm` trait over Slurm's command-line tools, run as
//! async subprocesses with a time limit, Slurm's stderr kept verbatim.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{JobId, Slurm, SlurmError, SubmitOptions, TestVerdict};

/// The default limit on one Slurm command; `DROVER_SLURM_TIMEOUT` (seconds)
/// overrides it.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Slurm through `sbatch`, `scancel` and friends.
#[derive(Debug, Clone)]
pub struct SlurmCli {
    conf: Option<PathBuf>,
    timeout: Duration,
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
        }
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
        let mut args = vec!["--parsable"];
        if options.hold {
            args.push("--hold");
        }
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

    async fn cancel(&self, ids: &[JobId]) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(JobId::to_string).collect();
        let args: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.run_ok("scancel", &args, None).await.map(drop)
    }

    async fn time_left(&self, id: JobId) -> Result<Option<Duration>, SlurmError> {
        let id = id.to_string();
        let out = self
            .run_ok("squeue", &["-h", "-j", &id, "-o", "%L"], None)
            .await?;
        // %L prints Slurm's time format with leading zero fields dropped
        // ("29:57" is 29 min 57 s), or words such as UNLIMITED.
        Ok(out
            .trim()
            .parse::<crate::config::Walltime>()
            .ok()
            .map(|w| w.as_duration()))
    }
}
