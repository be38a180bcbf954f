//! `_drover.RemoteCluster`: a pool on an ssh host (`ssh=`). The pool runs
//! on the host; this interpreter runs `drover cluster up --ssh` (or
//! `cluster attach --ssh`) as a child process that holds the one ssh
//! connection, the pool's hold and its forwarded ports, and talks to the
//! pool's scheduler through the port forwarded here, with its token and
//! pinned certificate, as a local pool's client does.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use drover::client::SchedulerClient;
use drover::config::{ConfigFile, JobSpec, PerJob};
use drover::protocol::{LogQuery, SchedulerFile};

use crate::calls;
use crate::cluster::{seconds, FOREVER};
use crate::errors::{error_chain, raise, spec_error};
use crate::runtime::wait;
use crate::settings;

/// How often `wait_for_workers` looks.
const LOOK_EVERY: Duration = Duration::from_millis(200);
/// The most of a job's log read through the scheduler, per stream.
const MAX_LOG_BYTES: usize = 4 << 20;
/// How long `close` waits for the near end to see the pool gone.
const CLOSE_WAIT: Duration = Duration::from_secs(60);
/// How long a read is tried again while the connection is being made again.
const READ_RETRY_FOR: Duration = Duration::from_secs(30);
/// Lines of the near end's stderr kept for an error.
const KEPT_LINES: usize = 40;

/// A pool on an ssh host.
#[pyclass(module = "drover._drover", frozen)]
pub struct RemoteCluster {
    client: SchedulerClient,
    file: SchedulerFile,
    path: String,
    spec: Option<JobSpec>,
    bridge: Mutex<Option<Child>>,
    /// The report read as the pool closed (its scheduler is gone after).
    closing_report: Mutex<Option<drover::protocol::Report>>,
}

#[pymethods]
impl RemoteCluster {
    /// Starts a pool with `job` and `pool` settings (over drover's config
    /// files here) on `ssh` (or, with neither, attaches to the pool `name`
    /// there), through `bin`, this side's drover.
    #[new]
    #[pyo3(signature = (bin, ssh, job=None, pool=None, name=None, remote_drover=None))]
    fn new(
        py: Python<'_>,
        bin: String,
        ssh: String,
        job: Option<&Bound<'_, PyDict>>,
        pool: Option<&Bound<'_, PyDict>>,
        name: Option<String>,
        remote_drover: Option<String>,
    ) -> PyResult<Self> {
        let mut argv = vec![bin];
        let mut spec = None;
        let settings_file = match (job, pool) {
            (Some(job), Some(pool)) => {
                let job = settings::job_options(job, true)?;
                let mut pool = settings::pool_options(pool, true)?;
                // Python sizes the pool after it starts.
                pool.workers.get_or_insert(0);
                spec = Some(job.clone().build().map_err(|e| spec_error(&e))?);
                let text = ConfigFile::text_of(&job, &pool).map_err(|e| spec_error(&e))?;
                let mut f = tempfile_in_private()?;
                f.write_all(text.as_bytes()).map_err(|e| {
                    PyRuntimeError::new_err(format!("writing the pool's settings: {e}"))
                })?;
                argv.extend(["--config".into(), f.path().display().to_string()]);
                argv.extend(["cluster".into(), "up".into()]);
                Some(f)
            }
            _ => {
                if name.is_none() {
                    return Err(PyValueError::new_err(
                        "attach needs name=: the pool's name on the host, as `cluster up --ssh` printed it",
                    ));
                }
                argv.extend(["cluster".into(), "attach".into()]);
                None
            }
        };
        argv.extend(["--ssh".into(), ssh]);
        if let Some(n) = name {
            argv.extend(["--name".into(), n]);
        }
        if let Some(r) = remote_drover {
            argv.extend(["--remote-drover".into(), r]);
        }
        let (bridge, exports) = py.detach(|| start_bridge(&argv))?;
        drop(settings_file);
        let path = export(&exports, "DROVER_SCHEDULER_FILE")?;
        let file = SchedulerFile::read(path.as_ref())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(RemoteCluster {
            client: SchedulerClient::from_file(&file),
            file,
            path,
            spec,
            bridge: Mutex::new(Some(bridge)),
            closing_report: Mutex::new(None),
        })
    }

    #[getter]
    fn restored(&self) -> bool {
        false
    }

    #[getter]
    fn groups(&self) -> Vec<String> {
        Vec::new()
    }

    /// Asks for `n` workers.
    fn scale(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        let client = self.client.clone();
        wait(py, async move { client.scale(n, None).await })?
            .map_err(|e| raise(py, "ClusterError", error_chain(&e)))
    }

    /// Asks for `k` jobs.
    fn scale_jobs(&self, py: Python<'_>, k: usize) -> PyResult<()> {
        let per = self.per_job().0 as usize;
        self.scale(py, k.saturating_mul(per.max(1)))
    }

    /// Asks group `name` for `n` workers.
    fn scale_group(&self, py: Python<'_>, name: String, n: usize) -> PyResult<()> {
        let client = self.client.clone();
        wait(py, async move { client.scale(n, Some(&name)).await })?
            .map_err(|e| PyValueError::new_err(error_chain(&e)))
    }

    /// Adapts between `minimum` and `maximum` workers, retiring those idle
    /// for `idle_timeout` seconds (default: the pool's setting).
    #[pyo3(signature = (minimum, maximum, idle_timeout=None))]
    fn adapt(
        &self,
        py: Python<'_>,
        minimum: usize,
        maximum: usize,
        idle_timeout: Option<f64>,
    ) -> PyResult<()> {
        self.ask_adapt(py, None, (minimum, maximum), idle_timeout)
    }

    /// Adapts group `name` between `minimum` and `maximum` workers.
    #[pyo3(signature = (name, minimum, maximum, idle_timeout=None))]
    fn adapt_group(
        &self,
        py: Python<'_>,
        name: String,
        minimum: usize,
        maximum: usize,
        idle_timeout: Option<f64>,
    ) -> PyResult<()> {
        self.ask_adapt(py, Some(name), (minimum, maximum), idle_timeout)
    }

    /// Stops adapting: the pool keeps the workers it has now.
    fn stop_adapt(&self, py: Python<'_>) -> PyResult<()> {
        let client = self.client.clone();
        wait(py, async move {
            let now = read_again(|| client.cluster()).await?.registered;
            client.scale(now, None).await
        })?
        .map_err(|e| raise(py, "ClusterError", error_chain(&e)))
    }

    /// Waits until `n` workers have registered (with Dask, for a Dask
    /// pool), at most `timeout` seconds.
    #[pyo3(signature = (n, timeout=None))]
    fn wait_for_workers(&self, py: Python<'_>, n: usize, timeout: Option<f64>) -> PyResult<()> {
        let limit = seconds("timeout", timeout)?.unwrap_or(FOREVER);
        let client = self.client.clone();
        let done = wait(py, async move {
            let start = Instant::now();
            loop {
                let s = read_again(|| client.cluster()).await?;
                let dask_ok = s.dask.as_ref().is_none_or(|d| d.workers.unwrap_or(0) >= n);
                if s.registered >= n && dask_ok {
                    return Ok(true);
                }
                if start.elapsed() > limit {
                    return Ok(false);
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
        })?
        .map_err(|e: drover::client::ClientError| raise(py, "ClusterError", error_chain(&e)))?;
        match done {
            true => Ok(()),
            false => Err(raise(
                py,
                "WorkersTimeout",
                format!("{n} workers did not register within {limit:?}"),
            )),
        }
    }

    /// The pool's status, as a local pool's.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let s = wait(py, async move { read_again(|| client.cluster()).await })?
            .map_err(|e| raise(py, "ClusterError", error_chain(&e)))?;
        Ok(pythonize::pythonize(py, &s)?)
    }

    /// What the pool cost and used so far; after `close`, as it stood
    /// when the pool was asked to close.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let kept = self.closing_report.lock().ok().and_then(|r| r.clone());
        let report = match kept {
            Some(r) => r,
            None => {
                let client = self.client.clone();
                wait(py, async move { read_again(|| client.report()).await })?
                    .map_err(|e| raise(py, "ClusterError", error_chain(&e)))?
            }
        };
        crate::calls::report(py, &report)
    }

    /// The stdout and stderr logs of the job that runs `worker`, read
    /// through the scheduler (bounded), never by copying files.
    fn logs(&self, py: Python<'_>, worker: String) -> PyResult<String> {
        let client = self.client.clone();
        wait(py, async move {
            let mut text = String::new();
            for err in [false, true] {
                text.push_str(&format!(
                    "==> {worker} {} <==\n",
                    if err { "stderr" } else { "stdout" }
                ));
                let mut query = LogQuery { from: 0, err };
                let mut read = 0;
                loop {
                    let chunk = read_again(|| client.job_log(&worker, &query)).await?;
                    if chunk.text.is_empty() || read >= MAX_LOG_BYTES {
                        break;
                    }
                    read += chunk.text.len();
                    text.push_str(&chunk.text);
                    query.from = chunk.to;
                }
            }
            Ok::<_, drover::client::ClientError>(text)
        })?
        .map_err(|e| raise(py, "ClusterError", error_chain(&e)))
    }

    /// What one job holds: (workers, cores, memory in bytes).
    #[getter]
    fn per_job(&self) -> (u32, u64, u64) {
        match &self.spec {
            Some(s) => {
                let p = PerJob::of(s);
                (p.workers, p.cores, p.memory)
            }
            None => (1, 1, 0),
        }
    }

    #[getter]
    fn job_script(&self) -> PyResult<String> {
        match &self.spec {
            Some(s) => drover::script::render(s).map_err(|e| PyValueError::new_err(e.to_string())),
            None => Err(PyValueError::new_err(
                "an attached pool's job script is on its host",
            )),
        }
    }

    /// The scheduler's address here (the forwarded port).
    #[getter]
    fn address(&self) -> String {
        self.file.address.clone()
    }

    /// The scheduler file here, naming the forwarded port.
    #[getter]
    fn scheduler_file(&self) -> String {
        self.path.clone()
    }

    #[getter]
    fn cluster_id(&self) -> String {
        self.file.cluster_id.to_string()
    }

    /// A URL (through the forwarded port) that logs one browser in to the
    /// pool's status page.
    fn dashboard_url(&self, py: Python<'_>) -> PyResult<String> {
        let client = self.client.clone();
        let code = wait(py, async move { client.dashboard_code().await })?
            .map_err(|e| raise(py, "ClusterError", error_chain(&e)))?;
        Ok(format!(
            "{}{}?code={}",
            self.file.address,
            drover::protocol::paths::UI_LOGIN,
            code.code
        ))
    }

    /// The Dask scheduler of a Dask pool, as reached from here.
    #[getter]
    fn dask<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match &self.file.dask {
            Some(d) => Ok(Some(pythonize::pythonize(py, d)?)),
            None => Ok(None),
        }
    }

    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self
            .spec
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("an attached pool's settings are on its host"))?;
        crate::cluster::spec_dict(py, s)
    }

    fn submit(&self, py: Python<'_>, tasks: &Bound<'_, PyList>) -> PyResult<Vec<u64>> {
        calls::submit(py, self.client.clone(), tasks)
    }

    fn tasks<'py>(&self, py: Python<'py>, ids: Vec<u64>) -> PyResult<Bound<'py, PyAny>> {
        calls::tasks(py, self.client.clone(), ids)
    }

    #[pyo3(signature = (ids, timeout=None))]
    fn wait_tasks<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<u64>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = seconds("timeout", timeout)?.unwrap_or(FOREVER);
        calls::wait_tasks(py, self.client.clone(), ids, limit)
    }

    fn cancel_task(&self, py: Python<'_>, id: u64) -> PyResult<()> {
        calls::cancel_task(py, self.client.clone(), id)
    }

    /// Closes the pool on its host (workers retire, jobs are cancelled);
    /// returns once the near end has seen it gone.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(mut bridge) = self
            .bridge
            .lock()
            .map_err(|_| PyRuntimeError::new_err("poisoned"))?
            .take()
        else {
            return Ok(());
        };
        let client = self.client.clone();
        let (last, asked) = wait(py, async move {
            let last = client.report().await.ok();
            (last, client.close().await)
        })?;
        if let (Ok(mut kept), Some(last)) = (self.closing_report.lock(), last) {
            *kept = Some(last);
        }
        py.detach(|| {
            let start = Instant::now();
            while start.elapsed() < CLOSE_WAIT {
                if let Ok(Some(_)) = bridge.try_wait() {
                    return;
                }
                std::thread::sleep(LOOK_EVERY);
            }
            let _ = bridge.kill();
            let _ = bridge.wait();
        });
        asked.map_err(|e| raise(py, "ClusterError", error_chain(&e)))
    }
}

impl RemoteCluster {
    fn ask_adapt(
        &self,
        py: Python<'_>,
        group: Option<String>,
        (min, max): (usize, usize),
        idle_timeout: Option<f64>,
    ) -> PyResult<()> {
        let idle = seconds("idle_timeout", idle_timeout)?;
        let request = drover::protocol::AdaptRequest {
            min,
            max,
            idle_timeout_ms: idle.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            group,
        };
        let client = self.client.clone();
        wait(py, async move { client.adapt(&request).await })?
            .map_err(|e| PyValueError::new_err(error_chain(&e)))
    }
}

/// A read of the scheduler's (safe to repeat), tried again while the
/// scheduler is unreachable for up to `READ_RETRY_FOR`: the near end makes
/// a lost ssh connection again on the same port.
async fn read_again<T, F, Fut>(call: F) -> Result<T, drover::client::ClientError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, drover::client::ClientError>>,
{
    let start = Instant::now();
    loop {
        match call().await {
            Err(e) if e.is_transient() && start.elapsed() < READ_RETRY_FOR => {
                tokio::time::sleep(LOOK_EVERY).await;
            }
            other => return other,
        }
    }
}

/// A fresh file only we can read, for the settings the near end reads.
fn tempfile_in_private() -> PyResult<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix("drover-ssh-settings-")
        .suffix(".toml")
        .tempfile()
        .map_err(|e| PyRuntimeError::new_err(format!("making a file for the pool's settings: {e}")))
}

/// Starts the near end and reads its `export` lines until `ready:`. If it
/// ends first, its error: `ValueError` for what the user can fix (exit 2:
/// settings, host, key, drover or Slurm missing there), else `RuntimeError`.
fn start_bridge(argv: &[String]) -> PyResult<(Child, Vec<(String, String)>)> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot run {}: {e}", argv[0])))?;
    let said = Arc::new(Mutex::new(VecDeque::new()));
    let stderr = child.stderr.take().expect("piped");
    let kept = said.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut k) = kept.lock() {
                if k.len() == KEPT_LINES {
                    k.pop_front();
                }
                k.push_back(line);
            }
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut exports = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            exports.push((k.to_string(), v.to_string()));
        }
        if line.starts_with("ready:") {
            // The rest is read too, so it never writes to a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, exports));
        }
    }
    let status = child.wait().ok().and_then(|s| s.code());
    let words: Vec<String> = said
        .lock()
        .map(|k| k.iter().cloned().collect())
        .unwrap_or_default();
    let error = words
        .iter()
        .filter(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim())
        .collect::<Vec<_>>()
        .join("; ");
    let message = match error.is_empty() {
        true => words.join("\n"),
        false => error,
    };
    match status {
        Some(2) => Err(PyValueError::new_err(message)),
        _ => Err(PyRuntimeError::new_err(format!(
            "the pool over ssh did not start: {message}"
        ))),
    }
}

fn export(exports: &[(String, String)], name: &str) -> PyResult<String> {
    exports
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| PyRuntimeError::new_err(format!("the near end printed no {name}")))
}
