//! `_drover.Cluster`: a `SlurmCluster` held by Python. Every method is a
//! thin call into the Rust API; those that wait release the GIL and give
//! way to Ctrl-C (see `runtime.rs`). The Python classes `drover.SlurmCluster`
//! and `drover.dask.SLURMCluster` are built on it.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use drover::cluster::{ClusterOptions, SlurmCluster};
use drover::config::{Ask, Memory, PerJob, Timeout};
use drover::scheduler::Bind;

use crate::calls;
use crate::errors::{cluster_error, error_chain, spec_error};
use crate::runtime::wait;
use crate::settings;

/// A pool of workers on Slurm, started by the constructor.
#[pyclass(module = "drover._drover", frozen)]
pub struct Cluster {
    inner: Arc<SlurmCluster>,
}

/// Seconds from Python as a duration; `None` is "no limit".
pub fn seconds(name: &str, secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "invalid value `{s}` for {name}: accepted: a number of seconds, 0 or more"
            ))
        }),
    }
}

/// A wait that stands for "no limit".
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

#[pymethods]
impl Cluster {
    /// Starts a cluster from job settings (`cores`, `memory`, `walltime`...)
    /// and pool settings (`scheduler_interface`, `poll_interval`...), both
    /// as keyword dicts; `dask` holds the Dask scheduler's `port`,
    /// `dashboard_address` and `extra` arguments. With `layered`, drover's
    /// config files lie under the settings given.
    /// `groups`, a list of `(name, job settings)` pairs, makes a pool with
    /// groups: each group's jobs are `job` with its own settings on top.
    /// With `check`, Slurm is asked at the start whether it would take the
    /// jobs (else at their first submission).
    #[new]
    #[pyo3(signature = (job, pool, dask=None, layered=true, groups=None, check=true))]
    fn new(
        py: Python<'_>,
        job: &Bound<'_, PyDict>,
        pool: &Bound<'_, PyDict>,
        dask: Option<&Bound<'_, PyDict>>,
        layered: bool,
        groups: Option<&Bound<'_, PyList>>,
        check: bool,
    ) -> PyResult<Self> {
        let job = settings::job_options(job, layered)?;
        let pool = settings::pool_options(pool, layered)?;
        let groups = match groups {
            Some(list) => Some(settings::groups(&job, list)?),
            None => None,
        };
        let spec = job.build().map_err(|e| spec_error(&e))?;
        let bind = Bind::for_pool(&pool, spec.interface.as_deref());
        let mut options = ClusterOptions::new(bind)
            .with(&pool)
            .map_err(|e| spec_error(&e))?;
        // Python owns SIGINT (KeyboardInterrupt); closing is Python's call.
        options.handle_signals = false;
        options.scheduler_file = spec.scheduler_file.clone();
        options.dask_scheduler = settings::dask_scheduler(dask)?;
        options.check_jobs = check;
        let started = wait(py, async move {
            let slurm = drover::slurm::connect(&pool).await?;
            match groups {
                Some(groups) => SlurmCluster::with_groups(groups, options, slurm).await,
                None => SlurmCluster::new(spec, options, slurm).await,
            }
        })?;
        let cluster = started.map_err(|e| cluster_error(py, e))?;
        Ok(Cluster {
            inner: Arc::new(cluster),
        })
    }

    /// Whether the cluster continues a pool from its journal: its size,
    /// jobs, workers and tasks came back with it.
    #[getter]
    fn restored(&self) -> bool {
        self.inner.restored()
    }

    /// Asks for `n` workers (jobs of `processes` workers, rounded up).
    fn scale(&self, n: usize) {
        self.inner.scale(n);
    }

    /// Asks for `k` jobs.
    fn scale_jobs(&self, k: usize) {
        self.inner.scale_jobs(k);
    }

    /// Adapts between `minimum` and `maximum` workers, retiring those idle
    /// for `idle_timeout` seconds (default: the pool's setting).
    #[pyo3(signature = (minimum, maximum, idle_timeout=None))]
    fn adapt(&self, minimum: usize, maximum: usize, idle_timeout: Option<f64>) -> PyResult<()> {
        match seconds("idle_timeout", idle_timeout)? {
            Some(t) => self.inner.adapt_with(minimum, maximum, t),
            None => self.inner.adapt(minimum, maximum),
        }
        Ok(())
    }

    /// Asks group `name` for `n` workers.
    fn scale_group(&self, name: &str, n: usize) -> PyResult<()> {
        self.inner
            .scale_group(name, n)
            .map_err(|e| PyValueError::new_err(error_chain(&e)))
    }

    /// Adapts group `name` between `minimum` and `maximum` workers.
    #[pyo3(signature = (name, minimum, maximum, idle_timeout=None))]
    fn adapt_group(
        &self,
        name: &str,
        minimum: usize,
        maximum: usize,
        idle_timeout: Option<f64>,
    ) -> PyResult<()> {
        let done = match seconds("idle_timeout", idle_timeout)? {
            Some(t) => self.inner.adapt_group_with(name, minimum, maximum, t),
            None => self.inner.adapt_group(name, minimum, maximum),
        };
        done.map_err(|e| PyValueError::new_err(error_chain(&e)))
    }

    /// The names of its groups, in order (empty without groups).
    #[getter]
    fn groups(&self) -> Vec<String> {
        self.inner.group_names()
    }

    /// Stops adapting; the pool keeps its size.
    fn stop_adapt(&self) {
        self.inner.stop_adapt();
    }

    /// Waits until `n` workers have registered (for Dask pools: with
    /// Dask), at most `timeout` seconds; fails early when a job fails first.
    #[pyo3(signature = (n, timeout=None))]
    fn wait_for_workers(&self, py: Python<'_>, n: usize, timeout: Option<f64>) -> PyResult<()> {
        let timeout = seconds("timeout", timeout)?.unwrap_or(FOREVER);
        let cluster = self.inner.clone();
        wait(
            py,
            async move { cluster.wait_for_workers(n, timeout).await },
        )?
        .map_err(|e| cluster_error(py, e))
    }

    /// The cluster's status: target, jobs with their Slurm states, pending
    /// reasons, nodes, exit codes, workers and logs; failures.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.inner.status())?)
    }

    /// What the pool cost and used so far (after `close`: in all), with
    /// its one-line summary.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::calls::report(py, &self.inner.report())
    }

    /// The stdout and stderr logs of the job that runs `worker` (a worker
    /// name or id, a Dask worker name, or a job id).
    fn logs(&self, py: Python<'_>, worker: &str) -> PyResult<String> {
        self.inner.logs(worker).map_err(|e| cluster_error(py, e))
    }

    /// The job script every worker job is submitted with.
    /// What one job holds: (workers, cores, memory in bytes), for `jobs_for`.
    #[getter]
    fn per_job(&self) -> (u32, u64, u64) {
        let p = self.inner.per_job();
        (p.workers, p.cores, p.memory)
    }

    #[getter]
    fn job_script(&self) -> String {
        self.inner.job_script().to_string()
    }

    /// The scheduler's address.
    #[getter]
    fn address(&self) -> String {
        self.inner.address()
    }

    /// The scheduler file workers and `drover` commands read.
    #[getter]
    fn scheduler_file(&self) -> String {
        self.inner.scheduler_file().display().to_string()
    }

    /// A URL that logs one browser in to the pool's status page, once,
    /// within 5 minutes (as `drover dashboard` prints it).
    fn dashboard_url(&self) -> String {
        self.inner.scheduler().dashboard_url()
    }

    /// The cluster's id, in the name and comment of each of its jobs.
    #[getter]
    fn cluster_id(&self) -> String {
        self.inner.cluster_id()
    }

    /// The Dask scheduler of a Dask pool: `address`, `http`, `scheduler_file`.
    #[getter]
    fn dask<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.inner.dask() {
            Some(d) => Ok(Some(pythonize::pythonize(py, &d)?)),
            None => Ok(None),
        }
    }

    /// What each job is: cores, processes, memory (bytes), the CPUs and
    /// memory asked of Slurm, walltime (seconds), Slurm job name.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        spec_dict(py, self.inner.spec())
    }

    /// Submits task specs (dicts of the wire's `TaskSpec`: `argv`, `name`,
    /// `env`, `cwd`, `cores`, `time_limit_ms`, `retries`, `deps`) as one
    /// batch; returns their ids.
    fn submit(&self, py: Python<'_>, tasks: &Bound<'_, PyList>) -> PyResult<Vec<u64>> {
        calls::submit(py, self.inner.client(), tasks)
    }

    /// The tasks `ids` as the scheduler reports them.
    fn tasks<'py>(&self, py: Python<'py>, ids: Vec<u64>) -> PyResult<Bound<'py, PyAny>> {
        calls::tasks(py, self.inner.client(), ids)
    }

    /// Waits until the tasks `ids` have ended (at most `timeout` seconds,
    /// else `TimeoutError`); returns them.
    #[pyo3(signature = (ids, timeout=None))]
    fn wait_tasks<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<u64>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = seconds("timeout", timeout)?.unwrap_or(FOREVER);
        calls::wait_tasks(py, self.inner.client(), ids, limit)
    }

    /// Cancels task `id` and what depends on it.
    fn cancel_task(&self, py: Python<'_>, id: u64) -> PyResult<()> {
        calls::cancel_task(py, self.inner.client(), id)
    }

    /// Closes the cluster: workers retire, the rest of its jobs are
    /// cancelled; none is left in the queue when it returns.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let cluster = self.inner.clone();
        wait(py, async move { cluster.close().await })?.map_err(|e| cluster_error(py, e))
    }
}

/// What each job is, as Python reads it.
pub fn spec_dict<'py>(
    py: Python<'py>,
    s: &drover::config::JobSpec,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("cores", s.cores)?;
    d.set_item("processes", s.processes)?;
    d.set_item("nodes", s.nodes)?;
    d.set_item("memory", s.memory.bytes())?;
    d.set_item("job_cpu", s.job_cpu)?;
    d.set_item("job_mem", s.job_mem.bytes())?;
    d.set_item("walltime", s.walltime.as_secs())?;
    d.set_item("job_name", &s.job_name)?;
    d.set_item("log_directory", s.log_directory.display().to_string())?;
    Ok(d)
}

/// Parses a memory size as drover does (`4GB`, `4 GiB`, `1.5G`), for the
/// Python layer's arithmetic.
#[pyfunction]
pub fn parse_memory(text: &str) -> PyResult<u64> {
    text.parse::<Memory>()
        .map(|m| m.bytes())
        .map_err(|e| PyValueError::new_err(format!("invalid value `{text}` for memory: {e}")))
}

/// The jobs the largest of the asks needs, for jobs holding `per_job`
/// (workers, cores, memory in bytes): drover's one rounding of sizes into
/// jobs (`config/sizing.rs`).
#[pyfunction]
#[pyo3(signature = (per_job, n=None, jobs=None, cores=None, memory=None))]
pub fn jobs_for(
    per_job: (u32, u64, u64),
    n: Option<u64>,
    jobs: Option<u64>,
    cores: Option<u64>,
    memory: Option<u64>,
) -> usize {
    let per = PerJob {
        workers: per_job.0,
        cores: per_job.1,
        memory: per_job.2,
    };
    let asks: Vec<Ask> = [
        n.map(Ask::Workers),
        jobs.map(Ask::Jobs),
        cores.map(Ask::Cores),
        memory.map(|m| Ask::Memory(Memory::from_bytes(m))),
    ]
    .into_iter()
    .flatten()
    .collect();
    per.jobs_for_all(&asks)
}

/// Parses a duration as drover does (`60`, `0.5`, `90s`, `5m`, `1h30m`)
/// into seconds; `name` is the argument the error names.
#[pyfunction]
pub fn parse_timeout(name: &str, text: &str) -> PyResult<f64> {
    text.parse::<Timeout>()
        .map(|t| t.duration().as_secs_f64())
        .map_err(|e| PyValueError::new_err(format!("invalid value `{text}` for {name}: {e}")))
}

/// The job script the job settings `job` make, without starting a pool
/// (the scheduler file is named when a pool starts). Checks the settings
/// as a pool would.
#[pyfunction]
#[pyo3(signature = (job, layered=true))]
pub fn job_script(job: &Bound<'_, PyDict>, layered: bool) -> PyResult<String> {
    let spec = settings::job_options(job, layered)?
        .build()
        .map_err(|e| spec_error(&e))?;
    drover::script::render(&spec).map_err(|e| PyValueError::new_err(error_chain(&e)))
}
