//! `drover._drover`: the Rust side of the `drover` Python package. The
//! pool logic is drover's own (`drover::cluster`); this crate only carries
//! it across: settings in (`settings`), a cluster handle (`cluster`),
//! graphs (`tasks`), waits that release the GIL (`runtime`), errors out
//! (`errors`).

mod calls;
mod cluster;
mod errors;
mod remote;
mod runtime;
mod settings;
mod tasks;

use pyo3::prelude::*;

/// drover's log lines go to stderr, filtered by `DROVER_LOG` (as
/// `RUST_LOG`: `info`, `drover=debug`...; default `warn`). Not through
/// Python's `logging`: a log call from a runtime thread would need the
/// GIL, which a Python thread may hold while it waits on that runtime.
fn init_logging() {
    let filter = std::env::var("DROVER_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[pymodule]
fn _drover(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<cluster::Cluster>()?;
    m.add_class::<remote::RemoteCluster>()?;
    m.add_function(wrap_pyfunction!(cluster::parse_memory, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::parse_timeout, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::jobs_for, m)?)?;
    m.add_function(wrap_pyfunction!(cluster::job_script, m)?)?;
    m.add_function(wrap_pyfunction!(settings::setting_keys, m)?)?;
    m.add_function(wrap_pyfunction!(settings::remote_site, m)?)?;
    m.add_function(wrap_pyfunction!(tasks::graph_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(tasks::graph_dot, m)?)?;
    m.add_function(wrap_pyfunction!(tasks::task_spec, m)?)?;
    m.add_function(wrap_pyfunction!(tasks::final_task_states, m)?)?;
    Ok(())
}
