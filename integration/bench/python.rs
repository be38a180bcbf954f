//! The Python package's figures on the real local Slurm (`cargo bench
//! --bench python`), side by side in one run, rounds interleaved:
//!
//! - `import drover`: a Python that imports it against one that does not;
//! - native scale(N) until N workers registered: `drover.SlurmCluster`
//!   from Python against the Rust API, the same settings;
//! - `drover.dask.SLURMCluster` scale(N) until Dask sees N workers,
//!   against dask-jobqueue's `SLURMCluster`, the same arguments.
//!
//! The Python rounds run `python_scale.py` in the venv `slurm/python-env`
//! makes. Under `cargo test` it is a smoke run with N = 2.

mod common;

use common::median;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use drover::cluster::SlurmCluster;
use drover::config::JobOptions;
use drover::slurm::SlurmCli;

/// Milliseconds `python -c CODE` takes, start to exit.
fn run_ms(python: &Path, code: &str) -> f64 {
    let t = Instant::now();
    let ok = Command::new(python)
        .args(["-c", code])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{} -c {code} failed", python.display());
    t.elapsed().as_secs_f64() * 1e3
}

/// The cost of `import drover`: interpreters that import it against ones
/// that do not, alternating.
fn import_time(python: &Path, rounds: usize) {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        with.push(run_ms(python, "import drover"));
        without.push(run_ms(python, "pass"));
    }
    let (w, b) = (median(with), median(without));
    println!(
        "import drover: {:.1} ms (interpreter with the import {w:.1} ms, without {b:.1} ms, medians of {rounds}); target under 100 ms",
        w - b
    );
}

/// One Python round of `python_scale.py KIND`: the seconds it printed.
fn python_round(python: &Path, kind: &str, n: usize, dir: &Path, conf: &str) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/bench/python_scale.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(kind)
        .args(["--workers", &n.to_string(), "--log-directory"])
        .arg(dir)
        .env("SLURM_CONF", conf)
        .env("DROVER_USER_CONFIG", "/dev/null")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python_scale.py {kind} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("scale-up s: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure from python_scale.py {kind}: {text}"))
}

/// One Rust round with the settings of `python_scale.py native`.
async fn rust_round(n: usize, dir: &Path, conf: &str) -> f64 {
    let spec = JobOptions::new()
        .cores(1u32)
        .memory("256MB".parse::<drover::config::Memory>().unwrap())
        .walltime("00:20:00".parse::<drover::config::Walltime>().unwrap())
        .interface("ib0")
        .job_name("rs-native-bench")
        .log_directory(dir)
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    let options = common::cluster_options(conf);
    let slurm = SlurmCli::new().with_conf(conf);
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    let t = Instant::now();
    cluster.scale(n);
    cluster
        .wait_for_workers(n, Duration::from_secs(300))
        .await
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    cluster.close().await.unwrap();
    took
}

/// Rounds of `a` and `b` alternating; prints each and the medians.
fn side_by_side(
    what: &str,
    rounds: usize,
    conf: &str,
    (a, mut run_a): (&str, impl FnMut() -> f64),
    (b, mut run_b): (&str, impl FnMut() -> f64),
) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        common::drained(conf);
        xs.push(run_a());
        common::drained(conf);
        ys.push(run_b());
        println!(
            "{what} round {round}: {a} {:.2} s, {b} {:.2} s",
            xs[round - 1],
            ys[round - 1]
        );
    }
    let (x, y) = (median(xs), median(ys));
    println!(
        "{what}: {a} median {x:.2} s, {b} median {y:.2} s; ratio {a}/{b} {:.2}",
        x / y
    );
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (n, rounds, import_rounds) = match measuring {
        true => (32, 5, 20),
        false => {
            println!(
                "smoke run (cargo test): N = 2, one round; the figures below are not measurements"
            );
            (2, 1, 2)
        }
    };
    let Some((conf, python)) = common::slurm_and_python("drover.dask, dask_jobqueue") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("drover-python-bench")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    import_time(&python, import_rounds);
    let rt = common::runtime();
    side_by_side(
        &format!("native scale({n}) until {n} workers registered"),
        rounds,
        &conf,
        ("Python", || python_round(&python, "native", n, dir, &conf)),
        ("Rust", || rt.block_on(rust_round(n, dir, &conf))),
    );
    side_by_side(
        &format!("Dask scale({n}) until Dask sees {n} workers"),
        rounds,
        &conf,
        ("drover.dask", || {
            python_round(&python, "dask", n, dir, &conf)
        }),
        ("dask-jobqueue", || {
            python_round(&python, "jobqueue", n, dir, &conf)
        }),
    );
}
