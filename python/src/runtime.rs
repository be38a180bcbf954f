//! The one tokio runtime every cluster of the interpreter runs on, and the
//! way Python waits on it: with the GIL released, and Ctrl-C honoured.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often a blocking call looks for a pending signal (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The runtime, started on first use. Two worker threads: a pool's work
/// is waiting on Slurm and on sockets, not computing.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drover")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// Runs `fut` to its end on the runtime without holding the GIL, so other
/// Python threads (Dask's event loop among them) keep going. A signal
/// handler that raises (Ctrl-C's `KeyboardInterrupt`) abandons the wait
/// and drops `fut`.
pub fn wait<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime();
    let mut handle = rt.spawn(fut);
    loop {
        let step = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut handle).await })
        });
        match step {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => return Err(PyRuntimeError::new_err(format!("drover: {e}"))),
            Err(_) => {
                if let Err(e) = py.check_signals() {
                    handle.abort();
                    return Err(e);
                }
            }
        }
    }
}
