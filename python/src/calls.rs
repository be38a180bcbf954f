//! Calls on a pool's scheduler that a local pool and a remote one (`ssh=`)
//! make the same way, through its client.

use std::time::Duration;

use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use drover::client::SchedulerClient;
use drover::protocol::{TaskId, TaskInfo, TaskSpec};

use crate::errors::{error_chain, raise};
use crate::runtime::wait;

/// How often task waits look at the scheduler.
const TASK_POLL: Duration = Duration::from_millis(50);

/// Submits task specs (dicts of the wire's `TaskSpec`) as one batch.
pub fn submit(
    py: Python<'_>,
    client: SchedulerClient,
    tasks: &Bound<'_, PyList>,
) -> PyResult<Vec<u64>> {
    let specs: Vec<TaskSpec> = pythonize::depythonize(tasks.as_any())
        .map_err(|e| PyValueError::new_err(format!("invalid task: {e}")))?;
    // Malformed resource or group names are bad input (ValueError);
    // a well-formed ask no worker has is the pool's answer (ClusterError).
    for s in &specs {
        drover::protocol::check_resources("resources", &s.resources)
            .and_then(|()| match &s.group {
                Some(g) => drover::protocol::check_name("group", g),
                None => Ok(()),
            })
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    let ids = wait(py, async move { client.submit(&specs).await })?
        .map_err(|e| raise(py, "ClusterError", error_chain(&e)))?;
    Ok(ids.into_iter().map(|i| i.0).collect())
}

/// The tasks `ids` as the scheduler reports them.
pub fn tasks<'py>(
    py: Python<'py>,
    client: SchedulerClient,
    ids: Vec<u64>,
) -> PyResult<Bound<'py, PyAny>> {
    let ids: Vec<TaskId> = ids.into_iter().map(TaskId).collect();
    let list = wait(py, async move { client.tasks(Some(&ids), false).await })?
        .map_err(|e| raise(py, "ClusterError", error_chain(&e)))?;
    Ok(pythonize::pythonize(py, &list.tasks)?)
}

/// Waits until the tasks `ids` have ended, at most `limit`.
pub fn wait_tasks<'py>(
    py: Python<'py>,
    client: SchedulerClient,
    ids: Vec<u64>,
    limit: Duration,
) -> PyResult<Bound<'py, PyAny>> {
    let ids: Vec<TaskId> = ids.into_iter().map(TaskId).collect();
    let waited = wait(py, async move {
        tokio::time::timeout(limit, client.wait_tasks(Some(&ids), TASK_POLL)).await
    })?;
    let tasks: Vec<TaskInfo> = waited
        .map_err(|_| PyTimeoutError::new_err(format!("the tasks did not end within {limit:?}")))?
        .map_err(|e| raise(py, "ClusterError", error_chain(&e)))?;
    Ok(pythonize::pythonize(py, &tasks)?)
}

/// Cancels task `id` and what depends on it.
pub fn cancel_task(py: Python<'_>, client: SchedulerClient, id: u64) -> PyResult<()> {
    wait(py, async move { client.cancel_task(TaskId(id)).await })?
        .map_err(|e| raise(py, "ClusterError", error_chain(&e)))
}

/// A report as Python takes it (`drover.Report` is built from it): the
/// wire's fields, with each usage's one-line summary beside them.
pub fn report<'py>(
    py: Python<'py>,
    report: &drover::protocol::Report,
) -> PyResult<Bound<'py, PyAny>> {
    let value = pythonize::pythonize(py, report)?;
    let summary = |u: &drover::protocol::Usage| u.summary();
    value.set_item("summary", report.summary())?;
    value.set_item("source_text", report.source.to_string())?;
    let groups = value.get_item("groups")?;
    for (name, usage) in &report.groups {
        groups.get_item(name)?.set_item("summary", summary(usage))?;
    }
    value
        .get_item("total")?
        .set_item("summary", report.summary())?;
    Ok(value)
}
