//! Graphs of command tasks from Python: a graph file's path, or a dict of
//! the file's shape, checked as `drover graph` checks it and turned into
//! one batch of task specs for `Cluster.submit`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use std::collections::BTreeMap;

use drover::protocol::{Dep, TaskId, TaskSpec, TaskState};
use drover::tasks::graph::Graph;

/// The states a task ends in (`succeeded`, `failed`, `cancelled`), as the
/// wire names them.
#[pyfunction]
pub fn final_task_states() -> Vec<String> {
    TaskState::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .filter_map(|s| serde_json::to_value(s).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// One task spec in its wire form, from values the Python layer has
/// checked (each named by its argument there): the wire shape is Rust's.
#[pyfunction]
#[pyo3(signature = (argv, *, name=None, env=None, cwd=None, cores=1, time_limit_ms=None,
    retries=0, deps=Vec::new(), memory_bytes=None, gpus=0, resources=None, group=None))]
#[allow(clippy::too_many_arguments)]
pub fn task_spec<'py>(
    py: Python<'py>,
    argv: Vec<String>,
    name: Option<String>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    cores: u32,
    time_limit_ms: Option<u64>,
    retries: u32,
    deps: Vec<u64>,
    memory_bytes: Option<u64>,
    gpus: u32,
    resources: Option<BTreeMap<String, u64>>,
    group: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let spec = TaskSpec {
        name,
        argv,
        env: env.unwrap_or_default(),
        cwd,
        cores,
        memory_bytes,
        gpus,
        resources: resources.unwrap_or_default(),
        group,
        time_limit_ms,
        retries,
        deps: deps.into_iter().map(|d| Dep::Id(TaskId(d))).collect(),
    };
    Ok(pythonize::pythonize(py, &spec)?)
}

/// The tasks of `graph` (a path, or a dict `{"tasks": {name: {...}}}`) as
/// task-spec dicts, dependencies by name.
#[pyfunction]
pub fn graph_tasks<'py>(py: Python<'py>, graph: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let graph = if let Ok(path) = graph.extract::<std::path::PathBuf>() {
        Graph::load(&path)
    } else if graph.is_instance_of::<pyo3::types::PyDict>() {
        let value: serde_json::Value = pythonize::depythonize(graph)
            .map_err(|e| PyValueError::new_err(format!("graph: {e}")))?;
        Graph::from_json(value)
    } else {
        return Err(PyTypeError::new_err(
            "graph: accepted: the path of a graph file (.toml or .json) or a dict {\"tasks\": {name: {\"command\": ...}}}",
        ));
    };
    let specs = graph
        .and_then(|g| g.specs())
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(pythonize::pythonize(py, &specs)?)
}

/// The graph drawn in Graphviz DOT.
#[pyfunction]
pub fn graph_dot(graph: &Bound<'_, PyAny>) -> PyResult<String> {
    let graph = if let Ok(path) = graph.extract::<std::path::PathBuf>() {
        Graph::load(&path)
    } else {
        let value: serde_json::Value = pythonize::depythonize(graph)
            .map_err(|e| PyValueError::new_err(format!("graph: {e}")))?;
        Graph::from_json(value)
    };
    graph
        .and_then(|g| g.dot())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}
