//! Helpers the benchmarks share.

#![allow(dead_code)]

#[path = "../../common/browser.rs"]
pub mod browser;
pub mod counting;
pub mod floor;
#[path = "../../common/process.rs"]
pub mod process;
pub mod procfs;
#[path = "../../common/simulated.rs"]
pub mod simulated;

#[allow(unused_imports)] // not every test crate uses both
pub use process::{run_ok, KillOnDrop};

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The runtime every benchmark measures on: two worker threads, as this
/// machine has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
}

/// Cluster options for benchmarks on the local Slurm: the scheduler on its
/// bridge, everything else at the defaults users get.
pub fn cluster_options(conf: &str) -> drover::cluster::ClusterOptions {
    let bind = drover::scheduler::Bind::Interface("drvbr0".into());
    let mut options = drover::cluster::ClusterOptions::new(bind);
    options.handle_signals = false;
    options.slurm_conf = Some(conf.into());
    options
}

/// Where the local Slurm's configuration is, unless `SLURM_CONF` says.
pub const CONF: &str = "/var/lib/drover-slurm/slurm.conf";

/// Slurm's queue, as `squeue -h` prints it.
pub fn queued(conf: &str) -> String {
    let out = std::process::Command::new("squeue")
        .arg("-h")
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until Slurm shows no job at all, so rounds do not overlap.
pub fn drained(conf: &str) {
    let start = std::time::Instant::now();
    while !queued(conf).trim().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "jobs still queued: {}",
            queued(conf)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The Slurm configuration and the Python a Slurm benchmark needs: the
/// local Slurm answering, and a Python that can `import` what is named.
/// `None` (a SKIPPED line printed) when one is missing; under `CI=true`
/// that panics instead, since CI never skips.
pub fn slurm_and_python(import: &str) -> Option<(String, std::path::PathBuf)> {
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| CONF.into());
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let up = std::process::Command::new("sinfo")
        .env("SLURM_CONF", &conf)
        .output();
    if !up.map(|o| o.status.success()).unwrap_or(false) {
        assert!(!ci, "no Slurm at SLURM_CONF={conf}");
        println!("SKIPPED: no Slurm at SLURM_CONF={conf}; start it with slurm/local-cluster up");
        return None;
    }
    let python = std::env::var_os("DROVER_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python-venv/bin/python")
        });
    let ready = std::process::Command::new(&python)
        .args(["-c", &format!("import {import}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ready {
        assert!(!ci, "{} cannot import {import}", python.display());
        println!("SKIPPED: create the Python environment with slurm/python-env");
        return None;
    }
    Some((conf, python))
}
