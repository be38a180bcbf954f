//! Helpers the benchmarks share.

#![allow(dead_code)]

#[path = "../../common/process.rs"]
pub mod process;
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
