//! The control-plane protocol: the ids, secrets and JSON messages that the
//! scheduler and the worker agents exchange over HTTP, and the scheduler
//! file that tells a worker where to register.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// HTTP paths of the control plane.
pub mod paths {
    /// `POST`: register a worker.
    pub const REGISTER: &str = "/v1/register";
    /// `GET`: every worker the scheduler knows.
    pub const WORKERS: &str = "/v1/workers";
    /// `GET /v1/workers/{id}/poll?wait_ms=N`: heartbeat and wait for instructions.
    pub const POLL: &str = "/v1/workers/{id}/poll";
    /// `POST`: a worker says it is leaving, and why.
    pub const DEREGISTER: &str = "/v1/workers/{id}/deregister";
    /// `POST`: ask one worker to retire.
    pub const RETIRE: &str = "/v1/workers/{id}/retire";
    /// `POST`: a worker reports that a task ended.
    pub const DONE: &str = "/v1/workers/{id}/done";
    /// `POST` tasks to run; `GET` every task.
    pub const TASKS: &str = "/v1/tasks";
    /// `GET` one task.
    pub const TASK: &str = "/v1/tasks/{task}";
    /// `POST`: cancel one task (and what depends on it).
    pub const TASK_CANCEL: &str = "/v1/tasks/{task}/cancel";
    /// `POST`: ask every live worker to retire.
    pub const RETIRE_ALL: &str = "/v1/retire";
    /// `GET`: the status of the cluster (pool) the scheduler serves.
    pub const CLUSTER: &str = "/v1/cluster";
    /// `POST {"workers": N}`: scale the cluster.
    pub const CLUSTER_SCALE: &str = "/v1/cluster/scale";
    /// `POST`: close the cluster: retire workers, cancel jobs, stop.
    pub const CLUSTER_CLOSE: &str = "/v1/cluster/close";

    /// `template` with `{id}` replaced.
    pub fn with_id(template: &str, id: super::WorkerId) -> String {
        template.replace("{id}", &id.0.to_string())
    }
}

/// Random bytes from the operating system.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system provides randomness");
    buf
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Identifies one cluster (pool) across the scheduler, its jobs and its files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterId(String);

impl ClusterId {
    /// A fresh random id (8 hex digits).
    pub fn generate() -> Self {
        ClusterId(hex(&random_bytes::<4>()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClusterId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(ClusterId(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a cluster id (1 to 32 letters and digits)"
            ))
        }
    }
}

/// The secret every control-plane request carries. Its `Debug` form hides
/// it, so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// A fresh random token of 256 bits.
    pub fn generate() -> Self {
        Token(hex(&random_bytes::<32>()))
    }

    /// The secret itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a token read from a trusted place (a scheduler file).
    pub fn from_secret(s: impl Into<String>) -> Self {
        Token(s.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// A worker's number in its scheduler's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// Where a worker sits in Slurm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmPlacement {
    /// `SLURM_JOB_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// `SLURM_ARRAY_JOB_ID`, for array tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<u64>,
    /// `SLURM_ARRAY_TASK_ID`, for array tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u64>,
    /// `SLURM_STEP_ID`, when run by `srun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<u64>,
}

impl fmt::Display for SlurmPlacement {
    /// `123`, `120_4` for array tasks, `123.2` for steps, `-` outside Slurm.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.array_job_id, self.array_task_id, self.job_id) {
            (Some(a), Some(t), _) => write!(f, "{a}_{t}")?,
            (_, _, Some(j)) => write!(f, "{j}")?,
            _ => return f.write_str("-"),
        }
        if let Some(s) = self.step_id {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// What a worker tells the scheduler when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The worker's name (unique in the cluster by convention).
    pub name: String,
    /// Where it runs in Slurm.
    pub slurm: SlurmPlacement,
    /// The node's hostname.
    pub hostname: String,
    /// The worker's address on the chosen interface.
    pub address: String,
    /// Cores it offers.
    pub cores: u32,
    /// Memory it offers, in bytes.
    pub memory_bytes: u64,
    /// When its allocation ends (Unix seconds), if it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_end: Option<u64>,
    /// When it will stop taking tasks to leave before its time limit (Unix
    /// milliseconds), if it will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_at_ms: Option<u64>,
    /// Its process id on the node.
    pub pid: u32,
    /// What it runs: drover tasks, or a Dask worker it supervises (which
    /// takes its work from Dask, never from drover's task queue).
    #[serde(default)]
    pub kind: crate::config::WorkerKind,
}

impl RegisterRequest {
    /// A made-up worker number `i`, for load tests and benchmarks that
    /// simulate many workers over the real protocol.
    pub fn simulated(i: usize) -> RegisterRequest {
        RegisterRequest {
            name: format!("sim-{i}"),
            slurm: SlurmPlacement {
                job_id: Some(1_000_000 + i as u64),
                ..Default::default()
            },
            hostname: format!("node{:03}", i % 500),
            address: format!("10.1.{}.{}", i / 250 % 256, i % 250),
            cores: 16,
            memory_bytes: 64 << 30,
            allocation_end: Some(2_000_000_000),
            drain_at_ms: None,
            pid: 100_000 + i as u32,
            kind: Default::default(),
        }
    }
}

/// The scheduler's answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The worker's id from now on.
    pub worker_id: WorkerId,
    /// The cluster it joined.
    pub cluster_id: ClusterId,
    /// How often to poll, which is also the heartbeat.
    pub heartbeat_interval_ms: u64,
}

/// What the scheduler tells a polling worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Instruction {
    /// Nothing new: poll again after `next_poll_ms` (0: at once).
    Continue {
        /// How long to wait before the next poll. The scheduler holds only
        /// a bounded number of polls open; the other workers come back
        /// after a heartbeat interval, holding no connection meanwhile.
        #[serde(default)]
        next_poll_ms: u64,
    },
    /// Leave: finish what runs, deregister and exit successfully.
    Retire {
        /// Why, for the worker's log.
        reason: String,
        /// Kill running tasks instead of finishing them: the scheduler has
        /// already given them to other workers.
        #[serde(default)]
        abandon: bool,
    },
    /// Run these tasks.
    Run {
        /// The tasks, each with the cores it holds.
        tasks: Vec<crate::tasks::Assignment>,
    },
}

/// A worker's farewell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterRequest {
    /// Why it leaves.
    pub reason: String,
}

/// A worker's state as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Registered and heartbeating.
    Running,
    /// Asked to retire, not yet gone.
    Retiring,
    /// Draining before its allocation ends.
    Draining,
    /// Left by itself, with a reason.
    Exited,
    /// Silent for longer than the configured bound.
    Lost,
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkerState::Running => "running",
            WorkerState::Retiring => "retiring",
            WorkerState::Draining => "draining",
            WorkerState::Exited => "exited",
            WorkerState::Lost => "lost",
        })
    }
}

/// One worker in the status API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its id.
    pub id: WorkerId,
    /// Its name.
    pub name: String,
    /// Where it runs in Slurm.
    pub slurm: SlurmPlacement,
    /// Its node.
    pub hostname: String,
    /// Its address on the interface.
    pub address: String,
    /// Cores.
    pub cores: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// End of its allocation (Unix seconds), if known.
    pub allocation_end: Option<u64>,
    /// When it stops taking tasks to leave before its time limit (Unix ms).
    #[serde(default)]
    pub drain_at_ms: Option<u64>,
    /// State.
    pub state: WorkerState,
    /// Registration time (Unix milliseconds).
    pub registered_at_ms: u64,
    /// Last heartbeat (Unix milliseconds).
    pub last_heartbeat_ms: u64,
    /// Why it exited or was lost.
    pub exit_reason: Option<String>,
    /// Tasks it runs now.
    #[serde(default)]
    pub running_tasks: u32,
    /// Since when it has run no task (Unix milliseconds); `None` while busy.
    #[serde(default)]
    pub idle_since_ms: Option<u64>,
    /// What it runs.
    #[serde(default)]
    pub kind: crate::config::WorkerKind,
}

/// One worker job of a cluster, as Slurm and the scheduler see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job or array task, as `scancel` names it (`123`, `120_4`).
    pub job: String,
    /// Its own job id, once Slurm has given it one.
    pub job_id: Option<u64>,
    /// Slurm's state (`PENDING`, `RUNNING`, `FAILED`...).
    pub state: String,
    /// Why it is pending, when it is.
    pub reason: Option<String>,
    /// Node it runs or ran on.
    pub node: Option<String>,
    /// Exit code, once ended.
    pub exit_code: Option<i32>,
    /// The workers registered from it.
    pub workers: Vec<WorkerInfo>,
    /// Its stdout log.
    pub log: String,
    /// What drover is doing with it: `retiring`, `cancelling`, or nothing.
    pub action: Option<String>,
}

/// A job that ended before any of its workers registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartupFailure {
    /// The job.
    pub job: String,
    /// Its final Slurm state.
    pub state: String,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// The last lines of its logs.
    pub log_tail: String,
}

/// A whole cluster: what was asked, every job, and what went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// The Slurm job name its jobs carry.
    pub job_name: String,
    /// Workers asked for.
    pub target_workers: usize,
    /// Jobs that makes.
    pub target_jobs: usize,
    /// Worker processes per job.
    pub processes: u32,
    /// Live registered workers.
    pub registered: usize,
    /// The Dask scheduler of a `dask` pool, and how many workers it sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask: Option<DaskStatus>,
    /// Its jobs that Slurm still shows, or that ended recently.
    pub jobs: Vec<JobStatus>,
    /// Set when the cluster stopped submitting after repeated start-up failures.
    pub stopped: Option<String>,
    /// The last error (a refused submission, a failed Slurm call).
    pub last_error: Option<String>,
    /// Recent start-up failures, newest last.
    pub failures: Vec<StartupFailure>,
    /// Jobs submitted so far.
    pub submitted: u64,
    /// Slurm commands run so far.
    pub slurm_calls: u64,
    /// Where the job logs go.
    pub log_directory: String,
    /// The adaptive range and its latest decision, when the pool adapts.
    #[serde(default)]
    pub adapt: Option<String>,
    /// Why the last round submitted fewer jobs than needed (site limits).
    #[serde(default)]
    pub held_back: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The scheduler file: how workers and tools find an authenticated
/// scheduler. Written atomically with mode 0600 because it holds the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerFile {
    /// Base URL, e.g. `http://10.77.0.1:40123`.
    pub address: String,
    /// The cluster's id.
    pub cluster_id: ClusterId,
    /// The cluster's token.
    pub token: Token,
    /// The scheduler's process id.
    pub pid: u32,
    /// When it started (Unix seconds).
    pub started_at: u64,
    /// The Dask scheduler of a `dask` pool, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask: Option<DaskEndpoint>,
}

/// A `dask` pool's Dask scheduler in a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskStatus {
    /// Its comm address.
    pub address: String,
    /// Its HTTP base URL.
    pub http: String,
    /// Dask's scheduler file.
    pub scheduler_file: String,
    /// Workers registered with it at the last look, if it answered.
    pub workers: Option<usize>,
}

/// Where a pool's Dask scheduler listens: what Dask workers and clients
/// connect to, and the HTTP endpoint drover reads it through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskEndpoint {
    /// Its comm address, e.g. `tcp://10.77.0.1:8786` (`DASK_SCHEDULER_ADDRESS`).
    pub address: String,
    /// Its HTTP base URL, e.g. `http://10.77.0.1:8787`.
    pub http: String,
    /// Dask's own scheduler file, for `Client(scheduler_file=...)`.
    pub scheduler_file: PathBuf,
}

/// A scheduler file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerFileError {
    /// It could not be read (missing, unreadable).
    #[error("cannot read scheduler file {}: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// It is not a drover scheduler file.
    #[error("scheduler file {} is not valid: {message} (expected JSON with address, cluster_id, token, pid, started_at, as `drover scheduler` writes it)", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// It could not be written.
    #[error("cannot write scheduler file {}: {cause}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
}

impl SchedulerFile {
    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<SchedulerFile, SchedulerFileError> {
        let text = std::fs::read_to_string(path).map_err(|cause| SchedulerFileError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let file: SchedulerFile =
            serde_json::from_str(&text).map_err(|e| SchedulerFileError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if !file.address.starts_with("http://") {
            return Err(SchedulerFileError::Invalid {
                path: path.to_path_buf(),
                message: format!("address `{}` is not an http:// URL", file.address),
            });
        }
        Ok(file)
    }

    /// Writes the file atomically (a temporary file renamed into place),
    /// readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), SchedulerFileError> {
        let err = |cause| SchedulerFileError::Write {
            path: path.to_path_buf(),
            cause,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("scheduler"),
            std::process::id()
        ));
        let json = serde_json::to_vec_pretty(self).expect("scheduler file serializes");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            f.write_all(&json).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hidden_in_debug() {
        let a = Token::generate();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, Token::generate());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn scheduler_file_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/scheduler.json");
        let file = SchedulerFile {
            address: "http://127.0.0.1:1".into(),
            cluster_id: ClusterId::generate(),
            token: Token::generate(),
            pid: 1,
            started_at: 2,
            dask: Some(DaskEndpoint {
                address: "tcp://127.0.0.1:2".into(),
                http: "http://127.0.0.1:3".into(),
                scheduler_file: "/tmp/dask.json".into(),
            }),
        };
        file.write(&path).unwrap();
        assert_eq!(SchedulerFile::read(&path).unwrap(), file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_scheduler_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SchedulerFile::read(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read scheduler file"), "{missing}");
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"address\": 3").unwrap();
        let bad = SchedulerFile::read(&path).unwrap_err().to_string();
        assert!(bad.contains("is not valid"), "{bad}");
    }

    #[test]
    fn placement_prints_like_slurm() {
        let mut p = SlurmPlacement {
            job_id: Some(12),
            ..Default::default()
        };
        assert_eq!(p.to_string(), "12");
        p.step_id = Some(1);
        assert_eq!(p.to_string(), "12.1");
        p.array_job_id = Some(10);
        p.array_task_id = Some(2);
        assert_eq!(p.to_string(), "10_2.1");
        assert_eq!(SlurmPlacement::default().to_string(), "-");
    }
}
