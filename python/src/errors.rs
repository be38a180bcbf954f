//! drover's errors as Python exceptions: bad settings are `ValueError`
//! (with the CLI's words, the setting named as Python spells it); the
//! rest are the classes of `drover._errors`, so Python code can catch
//! `drover.ClusterError` or `drover.WorkersTimeout`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use drover::cluster::ClusterError;
use drover::config::SpecError;

/// An exception of `drover._errors` by class name.
pub fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let found = py
        .import("drover._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match found {
        Ok(class) => PyErr::from_type(class, message),
        Err(e) => e,
    }
}

/// A bad setting: `ValueError`, naming the setting as a keyword argument.
pub fn spec_error(e: &SpecError) -> PyErr {
    let text = e.to_string();
    let named = match e {
        SpecError::Invalid { field, .. } => python_name(&text, field),
        SpecError::Setting { name, .. } => python_name(&text, name),
        _ => text,
    };
    PyValueError::new_err(named)
}

/// `text` with the setting `name` (kebab-case, as in config files) in its
/// "for NAME:" spelled as Python's keyword (snake_case).
fn python_name(text: &str, name: &str) -> String {
    text.replacen(
        &format!("for {name}:"),
        &format!("for {}:", name.replace('-', "_")),
        1,
    )
}

/// A cluster's failure as the Python exception that fits it.
pub fn cluster_error(py: Python<'_>, e: ClusterError) -> PyErr {
    let message = error_chain(&e);
    match e {
        ClusterError::Spec(s) => spec_error(&s),
        ClusterError::WaitTimeout { .. } => raise(py, "WorkersTimeout", message),
        _ => raise(py, "ClusterError", message),
    }
}

/// An error and its causes, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
