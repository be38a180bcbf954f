//! Dask pools: the Dask scheduler a `dask` pool starts with the configured
//! Python (`mod.rs`), the HTTP routes drover reads and steers it through
//! (`api`, and `routes.py` on the scheduler's side), and the command line
//! of the Dask worker each job runs (`worker_command`).
//!
//! drover never speaks Dask's own protocol. The Dask scheduler it starts
//! serves its HTTP side (dashboard and drover's routes) only on the
//! address its comm binds, never on every interface; drover's routes want
//! the pool's token, and Dask's unauthenticated `/api/v1` and proxy are
//! left off.

mod api;
mod worker_command;

pub use api::{DaskApi, DaskWorker, DaskWorkers, MAX_ANSWER_BYTES};
pub use worker_command::{dask_name, DaskWorkerCommand, WORKER_PRELOAD};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

use crate::exit::{ExitStatus, FAILURE, USAGE};
use crate::private_fs::{FsError, PrivateDir};
use crate::protocol::{DaskEndpoint, DaskTls, Token};

/// HTTP route modules of the Dask schedulers drover starts: Dask's
/// defaults without the Jupyter proxy, and drover's own (`routes.py`) in
/// place of Dask's `/api/v1`, which has no login.
const HTTP_ROUTES: &str =
    "[\"distributed.http.scheduler.json\", \"distributed.http.scheduler.info\", \
     \"distributed.http.scheduler.prometheus\", \"distributed.http.health\", \
     \"distributed.http.statics\", \"drover_dask_routes\"]";

/// drover's own route module for the Dask schedulers it starts (see the
/// file): listing, adaptive target and retire, behind the pool's token.
const ROUTES_MODULE: &str = include_str!("routes.py");

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
    // Workers are pointed at the address it names: it must be ours.
    let text = crate::private_fs::read_trusted(path, "Dask scheduler file", 1 << 20)
        .map_err(|e| bad(e.to_string()))?;
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
        token: None,
    })
}

/// How a pool's Dask scheduler is started, beyond where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaskSchedulerOptions {
    /// Its port; 0 picks a free one.
    pub port: u16,
    /// Its dashboard's address, as `dask scheduler --dashboard-address`
    /// takes it; a bare port (`:8787`, `:0` for any free port) is served
    /// on the scheduler's own address only.
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

/// Where the dashboard listens: a bare `:PORT` (Dask's own form for "every
/// interface") becomes that port on `ip`, the address the scheduler's comm
/// binds; an address with a host is the user's explicit choice.
fn dashboard_on(address: &str, ip: std::net::IpAddr) -> String {
    match address.strip_prefix(':') {
        Some(port) if ip.is_ipv6() => format!("[{ip}]:{port}"),
        Some(port) => format!("{ip}:{port}"),
        None => address.to_string(),
    }
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
        let ip = match bind {
            DaskBind::Interface(i) => std::net::IpAddr::V4(
                crate::net::interface_ipv4(i).map_err(|e| not_bound(python, e))?,
            ),
            DaskBind::Host(ip) => *ip,
        };
        let mut cmd = tokio::process::Command::new(python);
        cmd.args(["-m", "distributed.cli.dask_scheduler", "--scheduler-file"])
            .arg(&file)
            .arg("--port")
            .arg(options.port.to_string())
            .arg("--dashboard-address")
            .arg(dashboard_on(&options.dashboard_address, ip))
            .args(&options.extra);
        match (bind, tls) {
            (DaskBind::Interface(i), None) => cmd.args(["--interface", i]),
            (DaskBind::Host(ip), None) => cmd.args(["--host", &ip.to_string()]),
            // With TLS files, `dask scheduler` takes `tls://` as its host and
            // then refuses an interface too: name the interface's address.
            (_, Some(t)) => cmd.arg("--host").arg(format!("tls://{ip}")).args(t.args()),
        };
        // The secret of drover's routes: in the environment, which only
        // this user can read (`/proc/PID/environ` is 0400), never argv.
        let token = Token::generate();
        cmd.env("DROVER_DASK_TOKEN", token.expose());
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
                endpoint.token = Some(token.clone());
                if DaskApi::new(&endpoint).workers().await.is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_binds_where_the_scheduler_does() {
        let v4: std::net::IpAddr = "10.77.0.1".parse().unwrap();
        let v6: std::net::IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(dashboard_on(":0", v4), "10.77.0.1:0");
        assert_eq!(dashboard_on(":8787", v4), "10.77.0.1:8787");
        assert_eq!(dashboard_on(":8787", v6), "[fd00::1]:8787");
        // Asked for by name: the user's choice stands.
        assert_eq!(dashboard_on("0.0.0.0:8787", v4), "0.0.0.0:8787");
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
