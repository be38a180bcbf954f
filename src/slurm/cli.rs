//! `SlurmCli`: the `Slurm` trait over Slurm's command-line tools, run as
//! async subprocesses with a time limit, Slurm's stderr kept verbatim.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{JobId, JobInfo, JobRef, NodeAddress, Slurm, SlurmError, SubmitOptions, TestVerdict};

/// The default limit on one Slurm command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Slurm through `sbatch`, `scancel` and `squeue`.
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
    /// Slurm as the environment configures it (`SLURM_CONF` or the
    /// default), each command limited to `DEFAULT_COMMAND_TIMEOUT`.
    pub fn new() -> Self {
        SlurmCli {
            conf: None,
            timeout: DEFAULT_COMMAND_TIMEOUT,
            calls: Arc::new(AtomicU64::new(0)),
        }
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

    /// Limits each command to `timeout`; one that takes longer counts as
    /// Slurm not answering.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The tools with each command limited as the pool's `slurm-timeout` says.
    pub fn for_pool(pool: &crate::config::PoolOptions) -> Self {
        match pool.slurm_timeout {
            Some(t) => SlurmCli::new().with_timeout(t.duration()),
            None => SlurmCli::new(),
        }
    }

    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(String, String)],
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
            .kill_on_drop(true)
            .envs(env.iter().map(|(k, v)| (k, v)));
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
            .map_err(|_| SlurmError::Unreachable {
                command: command.clone(),
                message: format!("no answer within {:?}", self.timeout),
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
        env: &[(String, String)],
    ) -> Result<String, SlurmError> {
        let out = self.run(program, args, stdin, env).await?;
        if out.success {
            return Ok(out.stdout);
        }
        let command = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        Err(SlurmError::failed(command, out.status, out.stderr))
    }
}

/// Whether `script` chooses what its job's environment is (`--export`).
fn has_own_export(script: &str) -> bool {
    script
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("#SBATCH"))
        .any(|d| d.trim_start().starts_with("--export"))
}

/// sbatch's options for `options`, before the script on its stdin; the
/// job's variables among them only when the script sets `--export` itself
/// (else they go in sbatch's environment).
fn submit_args(options: &SubmitOptions, export_env: bool) -> Vec<String> {
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
    if let Some((out, err)) = &options.logs {
        args.push(format!("--output={out}"));
        args.push(format!("--error={err}"));
    }
    if export_env && !options.env.is_empty() {
        let vars: Vec<String> = options
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        args.push(format!("--export=ALL,{}", vars.join(",")));
    }
    args
}

/// `sinfo -N -o "%N %o %P"` lines as the nodes of `partition` (the one
/// marked default, `batch*`, when `None`), each node once.
fn parse_node_addresses(text: &str, partition: Option<&str>) -> Vec<NodeAddress> {
    let mut out: Vec<NodeAddress> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(address), Some(part)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let wanted = match partition {
            Some(p) => part.trim_end_matches('*') == p,
            None => part.ends_with('*'),
        };
        if wanted && !out.iter().any(|n| n.name == name) {
            out.push(NodeAddress {
                name: name.to_string(),
                address: address.to_string(),
            });
        }
    }
    out
}

#[async_trait::async_trait]
impl Slurm for SlurmCli {
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError> {
        let exported = has_own_export(script);
        let args = submit_args(options, exported);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // The job's variables ride in sbatch's own environment, which
        // sbatch exports by default: `--export=ALL,NAME=VALUE` makes Slurm
        // start an array's tasks one by one, seconds slower at 8 tasks
        // (docs/BENCHMARKS.md). Only a script that sets its own `--export`
        // gets them on the command line.
        let env: &[(String, String)] = if exported { &[] } else { &options.env };
        let stdout = self.run_ok("sbatch", &args, Some(script), env).await?;
        stdout.parse().map_err(|_| SlurmError::Unexpected {
            command: "sbatch --parsable".into(),
            output: stdout.trim().to_string(),
        })
    }

    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError> {
        let out = self
            .run("sbatch", &["--test-only"], Some(script), &[])
            .await?;
        let message = [out.stderr.trim(), out.stdout.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        if !out.success {
            // A verdict needs an answer: no answer is an error, not a no.
            let e = SlurmError::failed("sbatch --test-only".into(), out.status, message.clone());
            if e.is_unreachable() {
                return Err(e);
            }
        }
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
        self.run_ok("scancel", &args, None, &[]).await.map(drop)
    }

    async fn release(&self, jobs: &[JobRef]) -> Result<bool, SlurmError> {
        if jobs.is_empty() {
            return Ok(true);
        }
        let ids = jobs
            .iter()
            .map(JobRef::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.run_ok("scontrol", &["release", &ids], None, &[])
            .await
            .map(|_| true)
    }

    async fn cancel_named(&self, name: &str) -> Result<(), SlurmError> {
        self.run_ok("scancel", &["--name", name], None, &[])
            .await
            .map(drop)
    }

    /// `sacct` for every job at once (in chunks that keep its command line
    /// short); a Slurm without accounting says so, and that is `None`.
    async fn fates(&self, jobs: &[JobRef]) -> Result<Option<Vec<super::JobFate>>, SlurmError> {
        let mut fates = Vec::new();
        for chunk in jobs.chunks(super::sacct::MAX_JOBS_PER_CALL) {
            let args = super::sacct::args(chunk);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match self.run_ok("sacct", &args, None, &[]).await {
                Ok(out) => fates.extend(super::sacct::parse(&out)?),
                Err(e) if super::sacct::says_accounting_is_off(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(fates))
    }

    /// `sacct --allocations` for every job of those names at once; a
    /// Slurm without accounting says so, and that is `None`.
    async fn allocations(
        &self,
        names: &[String],
        seconds: u64,
    ) -> Result<Option<Vec<super::allocations::JobAllocation>>, SlurmError> {
        use super::allocations;
        let mut out = Vec::new();
        for chunk in names.chunks(allocations::MAX_NAMES) {
            let args = allocations::args(chunk, seconds);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match self.run_ok("sacct", &args, None, &allocations::env()).await {
                // sacct splits names at commas: keep only the names asked.
                Ok(text) => out.extend(
                    allocations::parse(&text)?
                        .into_iter()
                        .filter(|a| chunk.contains(&a.name)),
                ),
                Err(e) if super::sacct::says_accounting_is_off(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(out))
    }

    async fn jobs(&self, name: Option<&str>) -> Result<Vec<JobInfo>, SlurmError> {
        use super::squeue_fields::{self, Unreadable};
        let args = squeue_fields::args(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = (self.run_ok("squeue", &args, None, &squeue_fields::env())).await?;
        match squeue_fields::parse(&out) {
            Ok(jobs) => return Ok(jobs),
            Err(Unreadable::Malformed(e)) => return Err(e),
            Err(Unreadable::Ambiguous(line)) => {
                tracing::debug!(%line, "a record squeue -O cannot tell apart: listing with --json");
            }
        }
        // `squeue --json` in Slurm 22.05 ignores `-n`: the name is applied
        // here.
        let out = self.run_ok("squeue", &["--json"], None, &[]).await?;
        let mut jobs = super::squeue::parse_squeue_json(&out)?;
        if let Some(name) = name {
            let names: Vec<&str> = name.split(',').collect();
            jobs.retain(|j| names.contains(&j.name.as_str()));
        }
        Ok(jobs)
    }

    /// `squeue -n A,B,...` once; names holding a comma (which `-n` would
    /// split) are listed one by one.
    async fn jobs_named(&self, names: &[String]) -> Result<Vec<JobInfo>, SlurmError> {
        if names.len() == 1 || names.iter().any(|n| n.contains(',') || n.is_empty()) {
            return super::jobs_one_name_at_a_time(self, names).await;
        }
        let mut jobs = self.jobs(Some(&names.join(","))).await?;
        // The `--json` fallback cannot filter by a list: keep ours here.
        jobs.retain(|j| names.contains(&j.name));
        Ok(jobs)
    }

    async fn time_left(&self, job: JobRef) -> Result<Option<Duration>, SlurmError> {
        let id = job.to_string();
        let out = self
            .run_ok("squeue", &["-h", "-j", &id, "-o", "%L"], None, &[])
            .await?;
        // %L prints Slurm's time format with leading zero fields dropped
        // ("29:57" is 29 min 57 s), or words such as UNLIMITED.
        Ok(out
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<crate::config::Walltime>().ok())
            .map(|w| w.as_duration()))
    }

    async fn node_addresses(
        &self,
        partition: Option<&str>,
    ) -> Result<Vec<NodeAddress>, SlurmError> {
        let out = self
            .run_ok("sinfo", &["-h", "-N", "-o", "%N %o %P"], None, &[])
            .await?;
        Ok(parse_node_addresses(&out, partition))
    }

    async fn scheduler_config(&self) -> Result<super::SchedulerConfig, SlurmError> {
        let out = self
            .run_ok("scontrol", &["show", "config"], None, &[])
            .await?;
        Ok(super::SchedulerConfig::parse(&out))
    }

    async fn site(&self) -> Result<super::SiteInfo, SlurmError> {
        let out = self
            .run_ok("scontrol", &["show", "config"], None, &[])
            .await?;
        Ok(super::SiteInfo::parse(&out))
    }

    async fn partitions(&self) -> Result<Vec<super::PartitionInfo>, SlurmError> {
        let out = self
            .run_ok("scontrol", &["show", "partition", "-o"], None, &[])
            .await?;
        Ok(super::PartitionInfo::parse_all(&out))
    }

    /// Three `sacctmgr` calls: the user's associations, default account,
    /// and every QOS's per-user limits.
    async fn user_limits(&self) -> Result<Option<super::UserLimits>, SlurmError> {
        let Some(user) = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
        else {
            return Ok(None);
        };
        let who = format!("user={user}");
        let assoc = self
            .run_ok(
                "sacctmgr",
                &[
                    "-nP",
                    "show",
                    "assoc",
                    &who,
                    "format=Account,Partition,QOS,DefaultQOS,MaxSubmit,MaxJobs",
                ],
                None,
                &[],
            )
            .await?;
        let default = self
            .run_ok(
                "sacctmgr",
                &["-nP", "show", "user", &user, "format=DefaultAccount"],
                None,
                &[],
            )
            .await?;
        let qos = self
            .run_ok(
                "sacctmgr",
                &["-nP", "show", "qos", "format=Name,MaxSubmitPU,MaxJobsPU"],
                None,
                &[],
            )
            .await?;
        Ok(Some(super::UserLimits::parse(
            &user, &assoc, &default, &qos,
        )))
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn child_env(&self) -> Vec<(String, String)> {
        let conf = self
            .conf
            .clone()
            .or_else(|| std::env::var_os("SLURM_CONF").map(Into::into));
        conf.map(|c| vec![("SLURM_CONF".to_string(), c.display().to_string())])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_options_become_sbatch_flags() {
        let options = SubmitOptions {
            hold: true,
            array: Some(4),
            exclude: vec!["node1".into(), "node2".into()],
            logs: Some(("/l/w-%A_%a.out".into(), "/l/w-%A_%a.err".into())),
            env: Vec::new(),
        };
        assert_eq!(
            submit_args(&options, false),
            [
                "--parsable",
                "--hold",
                "--array=0-3",
                "--exclude=node1,node2",
                "--output=/l/w-%A_%a.out",
                "--error=/l/w-%A_%a.err"
            ]
        );
        assert_eq!(
            submit_args(&SubmitOptions::default(), false),
            ["--parsable"]
        );
        let indexed = SubmitOptions {
            env: vec![("DROVER_JOB_INDEX_BASE".into(), "4".into())],
            ..Default::default()
        };
        // The variables go in sbatch's environment, unless the script
        // chooses its own export.
        assert_eq!(submit_args(&indexed, false), ["--parsable"]);
        assert_eq!(
            submit_args(&indexed, true),
            ["--parsable", "--export=ALL,DROVER_JOB_INDEX_BASE=4"]
        );
        assert!(has_own_export("#!/bin/sh\n#SBATCH --export=NONE\nrun\n"));
        assert!(!has_own_export(
            "#!/bin/sh\n#SBATCH --exclusive\necho --export\n"
        ));
    }

    #[test]
    fn node_addresses_come_from_the_partition_asked_or_the_default() {
        let sinfo = "node1 10.77.0.11 batch*\nnode2 10.77.0.12 batch*\nnode1 10.77.0.11 small\ngpu1 gpu1.local gpu\n";
        let names = |p| {
            parse_node_addresses(sinfo, p)
                .into_iter()
                .map(|n| format!("{}={}", n.name, n.address))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["node1=10.77.0.11", "node2=10.77.0.12"]);
        assert_eq!(names(Some("small")), ["node1=10.77.0.11"]);
        assert_eq!(names(Some("gpu")), ["gpu1=gpu1.local"]);
        assert!(names(Some("none")).is_empty());
    }
}
