//! The Python environment tests run Dask drivers and workers with.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with dask, distributed and xgboost (`slurm/python-env`):
/// `$DROVER_TEST_PYTHON`, else this checkout's `target/python-venv`. Under
/// `CI=true` a missing one fails the test instead of skipping it.
pub fn dask_python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os("DROVER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python-venv/bin/python")
        });
    let usable = Command::new(&python)
        .args(["-c", "import distributed, xgboost, matplotlib"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if usable {
        return Some(python);
    }
    let why = format!(
        "{test}: {} cannot import distributed, xgboost and matplotlib (create it with slurm/python-env)",
        python.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; under CI=true integration tests never skip");
    }
    eprintln!("SKIPPED {why}");
    None
}
