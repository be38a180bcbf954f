//! Dask pools: the Dask scheduler a `dask` pool starts with the configured
//! Python, the HTTP endpoints drover reads it through (who registered,
//! retire these), and the command line of the Dask worker each job runs.
//!
//! drover never speaks Dask's own protocol: the scheduler's HTTP API
//! (`/api/v1/get_workers`, `/api/v1/retire_workers`) is enough to count
//! workers and to retire them with their data moved elsewhere first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use crate::exit::{ExitStatus, FAILURE, USAGE};
use crate::private_fs::{FsError, PrivateDir};
use crate::protocol::{DaskEndpoint, DaskTls};

/// HTTP route modules the Dask scheduler must serve for drover (Dask's
/// default leaves the API out).
const HTTP_ROUTES: &str =
    "[\"distributed.http.scheduler.api\", \"distributed.http.scheduler.json\", \
     \"distributed.http.scheduler.info\", \"distributed.http.scheduler.prometheus\", \
     \"distributed.http.health\", \"distributed.http.proxy\", \"distributed.http.statics\", \
     \"drover_dask_routes\"]";

/// drover's own route module for the Dask schedulers it starts (see the
/// file): per-worker load as JSON.
const ROUTES_MODULE: &str = include_str!("dask_routes.py");

/// Something went wrong with Dask.
#[derive(Debug, thiserror::Error)]
pub enum DaskError {
    /// The Python cannot run Dask's scheduler at all.
    #[error("cannot start the Dask scheduler with {python}: {cause} (pass --python PATH to a Python with dask and distributed; slurm/python-env creates one)", python = .python.display())]
    Spawn {
        /// The Python.
        python: PathBuf,
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
    /// The scheduler process ended or never wrote its file.
    #[error("the Dask scheduler ({python} -m distributed.cli.dask_scheduler) did not start: {why}; \
             is it a Python with dask and distributed (--python PATH; slurm/python-env creates one)? \
             Last lines of its log {}:\n{tail}", .log.display(), python = .python.display())]
    NotStarted {
        /// The Python.
        python: PathBuf,
        /// What was seen instead: its exit, or no answer in time.
        why: String,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// Dask's scheduler file is unreadable.
    #[error("Dask scheduler file {}: {message}", .path.display())]
    SchedulerFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Its directory or a file in it is not safe to use.
    #[error("Dask scheduler directory: {0}")]
    Files(#[from] FsError),
    /// The HTTP API failed.
    #[error("Dask scheduler HTTP API {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl ExitStatus for DaskError {
    fn exit_code(&self) -> u8 {
        match self {
            DaskError::Spawn { .. } | DaskError::SchedulerFile { .. } => USAGE,
            DaskError::NotStarted { .. } | DaskError::Http { .. } => FAILURE,
            DaskError::Files(e) => e.exit_code(),
        }
    }
}

/// The parts of Dask's scheduler file drover reads.
#[derive(Debug, Deserialize)]
struct DaskFile {
    address: String,
    #[serde(default)]
    services: std::collections::HashMap<String, u16>,
}

/// Reads a Dask scheduler file (written by `dask scheduler
/// --scheduler-file`) into an endpoint; it needs the HTTP service.
pub fn read_scheduler_file(path: &Path) -> Result<DaskEndpoint, DaskError> {
    let bad = |message: String| DaskError::SchedulerFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: DaskFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let host = file
        .address
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(&file.address)
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .ok_or_else(|| bad(format!("address `{}` has no port", file.address)))?;
    let port = file.services.get("dashboard").copied().ok_or_else(|| {
        bad("it lists no HTTP service (`services.dashboard`); start the scheduler with a dashboard address".into())
    })?;
    Ok(DaskEndpoint {
        address: file.address,
        http: format!("http://{host}:{port}"),
        scheduler_file: path.to_path_buf(),
        tls: None,
    })
}

/// How a pool's Dask scheduler is started, beyond where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaskSchedulerOptions {
    /// Its port; 0 picks a free one.
    pub port: u16,
    /// Its dashboard's address, as `dask scheduler --dashboard-address`
    /// takes it (`:8787`, `:0` for any free port).
    pub dashboard_address: String,
    /// Further `dask scheduler` arguments (`--protocol tls`, `--tls-ca-file`...).
    pub extra: Vec<String>,
}

impl Default for DaskSchedulerOptions {
    fn default() -> Self {
        DaskSchedulerOptions {
            port: 0,
            dashboard_address: ":0".into(),
            extra: Vec::new(),
        }
    }
}

fn not_bound(python: &Path, e: crate::net::NetError) -> DaskError {
    DaskError::Spawn {
        python: python.to_path_buf(),
        cause: std::io::Error::other(e.to_string()),
    }
}

/// Writes drover's route module into `dir` (private: Python imports from
/// it) and returns the `PYTHONPATH` that finds it (ahead of the caller's own).
fn routes_on_path(dir: &PrivateDir) -> Result<std::ffi::OsString, DaskError> {
    dir.write_file("drover_dask_routes.py", ROUTES_MODULE.as_bytes())?;
    let dir = dir.path();
    Ok(match std::env::var_os("PYTHONPATH") {
        Some(p) if !p.is_empty() => {
            let mut v = dir.as_os_str().to_os_string();
            v.push(":");
            v.push(p);
            v
        }
        _ => dir.as_os_str().to_os_string(),
    })
}

/// A Dask scheduler process that a pool started; killed when dropped.
pub struct DaskScheduler {
    child: tokio::process::Child,
    endpoint: DaskEndpoint,
}

/// Where the Dask scheduler listens.
#[derive(Debug, Clone)]
pub enum DaskBind {
    /// On this interface's address.
    Interface(String),
    /// On this host address.
    Host(std::net::IpAddr),
}

impl DaskScheduler {
    /// Starts `python -m distributed.cli.dask_scheduler` on `bind`, with
    /// its scheduler file and log in `dir`, and waits (at most `timeout`)
    /// until its scheduler file and HTTP API answer.
    pub async fn start(
        python: &Path,
        bind: &DaskBind,
        options: &DaskSchedulerOptions,
        tls: Option<&DaskTls>,
        dir: &PrivateDir,
        timeout: Duration,
    ) -> Result<DaskScheduler, DaskError> {
        let file = dir.path().join("dask-scheduler.json");
        let log = dir.path().join("dask-scheduler.log");
        let python_path = routes_on_path(dir)?;
        let _ = std::fs::remove_file(&file);
        let log_file = dir.create_file("dask-scheduler.log")?;
        let mut cmd = tokio::process::Command::new(python);
        cmd.args(["-m", "distributed.cli.dask_scheduler", "--scheduler-file"])
            .arg(&file)
            .arg("--port")
            .arg(options.port.to_string())
            .arg("--dashboard-address")
            .arg(&options.dashboard_address)
            .args(&options.extra);
        match (bind, tls) {
            (DaskBind::Interface(i), None) => cmd.args(["--interface", i]),
            (DaskBind::Host(ip), None) => cmd.args(["--host", &ip.to_string()]),
            // With TLS files, `dask scheduler` takes `tls://` as its host and
            // then refuses an interface too: name the interface's address.
            (bind, Some(t)) => {
                let ip = match bind {
                    DaskBind::Interface(i) => std::net::IpAddr::V4(
                        crate::net::interface_ipv4(i).map_err(|e| not_bound(python, e))?,
                    ),
                    DaskBind::Host(ip) => *ip,
                };
                cmd.arg("--host").arg(format!("tls://{ip}")).args(t.args())
            }
        };
        cmd.env("DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES", HTTP_ROUTES)
            .env("PYTHONPATH", python_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|cause| DaskError::Spawn {
                python: python.to_path_buf(),
                cause,
            })?)
            .stderr(log_file)
            .kill_on_drop(true);
        // Should this process die without closing the pool (SIGKILL), the
        // Dask scheduler goes with it rather than lingering on the login node.
        // SAFETY: the closure only makes one async-signal-safe syscall.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn().map_err(|cause| DaskError::Spawn {
            python: python.to_path_buf(),
            cause,
        })?;
        let not_started = |why: String| DaskError::NotStarted {
            python: python.to_path_buf(),
            why,
            tail: crate::private_fs::read::tail_lines(&log, 20).unwrap_or_default(),
            log: log.clone(),
        };
        let start = tokio::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return Err(not_started(format!("it exited with {status}")));
            }
            if let Ok(mut endpoint) = read_scheduler_file(&file) {
                endpoint.tls = tls.cloned();
                if DaskApi::new(&endpoint.http).workers().await.is_ok() {
                    tracing::info!(address = %endpoint.address, http = %endpoint.http, "Dask scheduler started");
                    return Ok(DaskScheduler { child, endpoint });
                }
            }
            if start.elapsed() > timeout {
                let _ = child.kill().await;
                return Err(not_started(format!("no answer within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where it listens.
    pub fn endpoint(&self) -> &DaskEndpoint {
        &self.endpoint
    }

    /// Stops it.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A worker as the Dask scheduler lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DaskWorker {
    /// Its name (drover names them after their Slurm job).
    #[serde(deserialize_with = "name_as_string")]
    pub name: String,
    /// Its comm address.
    pub address: String,
}

fn name_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

#[derive(Deserialize)]
struct WorkerList {
    workers: Vec<DaskWorker>,
}

/// The Dask scheduler's HTTP API.
#[derive(Debug, Clone)]
pub struct DaskApi {
    http: reqwest::Client,
    base: String,
}

impl DaskApi {
    /// The API at `base` (`http://host:port`).
    pub fn new(base: &str) -> DaskApi {
        DaskApi {
            http: crate::tls::http_client_builder(None)
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Every worker registered with the Dask scheduler.
    pub async fn workers(&self) -> Result<Vec<DaskWorker>, DaskError> {
        let list: WorkerList = self.get_json("/api/v1/get_workers").await?;
        Ok(list.workers)
    }

    /// GETs `path` and reads its JSON answer.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, DaskError> {
        let url = format!("{}{path}", self.base);
        let request = self.http.get(&url).timeout(Duration::from_secs(10));
        send(request, &url)
            .await?
            .json()
            .await
            .map_err(|e| http_error(&url, e))
    }

    /// How many workers Dask's own adaptive logic wants now (its
    /// `adaptive_target`, from queued work, task durations and memory).
    pub async fn desired_workers(&self) -> Result<usize, DaskError> {
        #[derive(Deserialize)]
        struct Counts {
            desired_workers: usize,
        }
        let counts: Counts = self.get_json("/json/counts.json").await?;
        Ok(counts.desired_workers)
    }

    /// How busy each worker is, by Dask name: the tasks the scheduler has
    /// assigned to it (drover's route, on schedulers drover started), else
    /// the tasks its last heartbeat reported (Dask's identity, which fails
    /// once workers report task timings).
    pub async fn activity(&self) -> Result<Vec<(String, u32)>, DaskError> {
        #[derive(Deserialize)]
        struct Load {
            #[serde(deserialize_with = "name_as_string")]
            name: String,
            processing: u32,
        }
        #[derive(Deserialize)]
        struct Loads {
            workers: Vec<Load>,
        }
        match self.get_json::<Loads>("/drover/v1/workers").await {
            Ok(loads) => {
                return Ok(loads
                    .workers
                    .into_iter()
                    .map(|l| (l.name, l.processing))
                    .collect())
            }
            Err(e) => tracing::debug!(error = %e, "no drover route on this Dask scheduler"),
        }
        let identity: serde_json::Value = self.get_json("/json/identity.json").await?;
        Ok(parse_activity(&identity))
    }

    /// Retires `addresses` through Dask: their data moves to other workers
    /// first, then Dask forgets them. Returns, when Dask has done so (or
    /// after `timeout`), the addresses Dask did retire: one whose data had
    /// nowhere to go is left out.
    pub async fn retire(
        &self,
        addresses: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, DaskError> {
        let url = format!("{}/api/v1/retire_workers", self.base);
        let request = self
            .http
            .post(&url)
            .timeout(timeout)
            .json(&serde_json::json!({ "workers": addresses }));
        let retired: serde_json::Map<String, serde_json::Value> = send(request, &url)
            .await?
            .json()
            .await
            .map_err(|e| http_error(&url, e))?;
        Ok(retired.keys().cloned().collect())
    }
}

/// Task states in which a task occupies a worker (Dask's worker-side states).
const BUSY_STATES: &[&str] = &[
    "executing",
    "long-running",
    "ready",
    "constrained",
    "waiting",
    "fetch",
    "flight",
];

/// Each worker's name and busy task count from the scheduler's identity.
fn parse_activity(identity: &serde_json::Value) -> Vec<(String, u32)> {
    let Some(workers) = identity.get("workers").and_then(|w| w.as_object()) else {
        return Vec::new();
    };
    workers
        .values()
        .filter_map(|w| {
            let name = match w.get("name")? {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let counts = w.pointer("/metrics/task_counts");
            let busy = BUSY_STATES
                .iter()
                .filter_map(|s| counts?.get(*s)?.as_u64())
                .sum::<u64>();
            Some((name, busy as u32))
        })
        .collect()
}

fn http_error(url: &str, message: impl ToString) -> DaskError {
    DaskError::Http {
        url: url.to_string(),
        message: message.to_string(),
    }
}

/// Sends `request`; a failure or an error status is a `DaskError::Http`.
async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response, DaskError> {
    let resp = request.send().await.map_err(|e| http_error(url, e))?;
    if !resp.status().is_success() {
        return Err(http_error(url, format!("HTTP {}", resp.status())));
    }
    Ok(resp)
}

/// The Dask name of the worker drover knows as `worker` (its Slurm job, with
/// `-I` per process): prefixed, so that Dask does not read `4711` or `120_4`
/// as a number.
pub fn dask_name(worker: &str) -> String {
    format!("{DASK_NAME_PREFIX}{worker}")
}

const DASK_NAME_PREFIX: &str = "slurm-";

/// How one job's Dask worker process is started.
#[derive(Debug, Clone)]
pub struct DaskWorkerCommand {
    /// The Python with `distributed`.
    pub python: PathBuf,
    /// The module it runs (`distributed.cli.dask_worker`).
    pub module: String,
    /// The Dask scheduler's address.
    pub scheduler: String,
    /// Threads per worker process.
    pub nthreads: u32,
    /// Worker processes.
    pub nworkers: u32,
    /// Memory limit per worker process, in bytes.
    pub memory_limit: u64,
    /// Name (a suffix `-I` is added per process when there are several).
    pub name: String,
    /// How long a worker waits for a vanished Dask scheduler.
    pub death_timeout: Duration,
    /// Interface to listen on.
    pub interface: Option<String>,
    /// Address to listen on when no interface is named: the one that
    /// routes to the scheduler.
    pub host: Option<std::net::IpAddr>,
    /// Run under Dask's own nanny process (else `--no-nanny`: drover's
    /// agent is the nanny).
    pub nanny: bool,
    /// Scratch directory.
    pub local_directory: Option<PathBuf>,
    /// Further `dask worker` arguments.
    pub extra: Vec<String>,
    /// The pool's Dask TLS files, when drover made them.
    pub tls: Option<DaskTls>,
}

impl DaskWorkerCommand {
    /// The argv, starting with the Python.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            self.python.display().to_string(),
            "-m".into(),
            self.module.clone(),
            self.scheduler.clone(),
            "--nthreads".into(),
            self.nthreads.to_string(),
            "--memory-limit".into(),
            self.memory_limit.to_string(),
            "--name".into(),
            self.name.clone(),
            "--death-timeout".into(),
            format!("{}s", self.death_timeout.as_secs().max(1)),
        ];
        if self.nworkers > 1 {
            argv.extend(["--nworkers".into(), self.nworkers.to_string()]);
        }
        argv.push(if self.nanny { "--nanny" } else { "--no-nanny" }.into());
        match (&self.interface, self.host) {
            (Some(i), _) => argv.extend(["--interface".into(), i.clone()]),
            (None, Some(h)) => argv.extend(["--host".into(), h.to_string()]),
            (None, None) => {}
        }
        if let Some(d) = &self.local_directory {
            argv.extend(["--local-directory".into(), d.display().to_string()]);
        }
        if let Some(t) = &self.tls {
            argv.extend(["--protocol".into(), "tls".into()]);
            argv.extend(t.args());
        }
        argv.extend(self.extra.iter().cloned());
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_counts_the_tasks_that_occupy_a_worker() {
        let identity = serde_json::json!({
            "workers": {
                "tcp://a:1": {"name": "slurm-1", "metrics": {"task_counts": {"executing": 2, "ready": 3, "memory": 40}}},
                "tcp://b:1": {"name": "slurm-2", "metrics": {"task_counts": {}}},
                "tcp://c:1": {"name": 7, "metrics": {}}
            }
        });
        let mut a = parse_activity(&identity);
        a.sort();
        assert_eq!(
            a,
            [
                ("7".to_string(), 0),
                ("slurm-1".into(), 5),
                ("slurm-2".into(), 0)
            ]
        );
    }

    #[test]
    fn dask_names_never_read_as_numbers() {
        assert_eq!(dask_name("120_4"), "slurm-120_4");
        assert_eq!(dask_name("4711-1"), "slurm-4711-1");
    }

    #[test]
    fn the_worker_command_carries_every_setting() {
        let cmd = DaskWorkerCommand {
            python: "/venv/bin/python".into(),
            module: "distributed.cli.dask_worker".into(),
            scheduler: "tcp://10.77.0.1:8786".into(),
            nthreads: 2,
            nworkers: 2,
            memory_limit: 1 << 30,
            name: "4711".into(),
            death_timeout: Duration::from_secs(60),
            interface: Some("ib0".into()),
            host: Some("10.77.0.11".parse().unwrap()),
            nanny: true,
            local_directory: Some("/scratch".into()),
            extra: vec!["--resources".into(), "GPU=1".into()],
            tls: Some(DaskTls {
                cert: "/d/tls-cert.pem".into(),
                key: "/d/tls-key.pem".into(),
            }),
        };
        assert_eq!(
            cmd.argv().join(" "),
            "/venv/bin/python -m distributed.cli.dask_worker tcp://10.77.0.1:8786 --nthreads 2 \
             --memory-limit 1073741824 --name 4711 --death-timeout 60s --nworkers 2 --nanny \
             --interface ib0 --local-directory /scratch --protocol tls --tls-ca-file /d/tls-cert.pem \
             --tls-cert /d/tls-cert.pem --tls-key /d/tls-key.pem --resources GPU=1"
        );
        // drover's agent as the nanny: one worker, no Dask nanny, on the
        // address that routes to the scheduler when no interface is named.
        let mine = DaskWorkerCommand {
            nworkers: 1,
            nanny: false,
            interface: None,
            local_directory: None,
            extra: Vec::new(),
            tls: None,
            ..cmd
        };
        assert_eq!(
            mine.argv().join(" "),
            "/venv/bin/python -m distributed.cli.dask_worker tcp://10.77.0.1:8786 --nthreads 2 \
             --memory-limit 1073741824 --name 4711 --death-timeout 60s --no-nanny --host 10.77.0.11"
        );
    }

    #[test]
    fn a_dask_scheduler_file_gives_both_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            r#"{"type": "Scheduler", "address": "tcp://10.77.0.1:45659", "services": {"dashboard": 43153}, "workers": {}}"#,
        )
        .unwrap();
        let e = read_scheduler_file(&path).unwrap();
        assert_eq!(e.address, "tcp://10.77.0.1:45659");
        assert_eq!(e.http, "http://10.77.0.1:43153");
        std::fs::write(&path, r#"{"address": "tcp://10.77.0.1:45659"}"#).unwrap();
        let err = read_scheduler_file(&path).unwrap_err().to_string();
        assert!(err.contains("services.dashboard"), "{err}");
    }
}
