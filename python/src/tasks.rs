//! Graphs of command tasks from Python: a graph file's path, or a dict of
//! the file's shape, checked as `drover graph` checks it and turned into
//! one batch of task specs for `Cluster.submit`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use drover::tasks::graph::Graph;

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
