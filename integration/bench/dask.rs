//! Dask pools against dask-jobqueue on the real local Slurm (`cargo bench
//! --bench dask`), side by side in one run: the time from `scale(N)` until
//! the Dask scheduler sees N workers, for drover's `dask` pools and for
//! dask-jobqueue's SLURMCluster, rounds interleaved, for N = 8 and 32.
//!
//! Both start the same Dask worker (`python -m distributed.cli.dask_worker`
//! with a nanny, 1 core, 1 GB) from the same Python (`slurm/python-env`).
//! Under `cargo test` it is a smoke run with N = 2.

mod common;

use common::median;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use drover::cluster::SlurmCluster;
use drover::config::{JobOptions, Memory, Timeout, WorkerKind};
use drover::slurm::SlurmCli;

/// One drover round: a fresh `dask` pool, scale(n) until Dask sees n workers.
async fn drover_round(python: &Path, conf: &str, n: usize, dir: &Path) -> f64 {
    let spec = JobOptions::new()
        .job_name("drover-dask-bench")
        .kind(WorkerKind::Dask)
        .python(python)
        .cores(1u32)
        .memory("1GB".parse::<Memory>().unwrap())
        .interface("ib0")
        .log_directory(dir)
        .death_timeout("30".parse::<Timeout>().unwrap())
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    let options = common::cluster_options(conf);
    let cluster = SlurmCluster::new(spec, options, SlurmCli::new().with_conf(conf))
        .await
        .unwrap();
    let start = Instant::now();
    cluster.scale(n);
    cluster
        .wait_for_workers(n, Duration::from_secs(300))
        .await
        .unwrap();
    let t = start.elapsed().as_secs_f64();
    assert_eq!(cluster.status().dask.unwrap().workers, Some(n));
    cluster.close().await.unwrap();
    t
}

/// One dask-jobqueue round, timed inside Python the same way.
fn jobqueue_round(python: &Path, conf: &str, n: usize, dir: &Path) -> f64 {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/bench/dask_jobqueue_scale.py");
    let out = Command::new(python)
        .arg(&script)
        .args(["--workers", &n.to_string(), "--rounds", "1"])
        .arg("--log-directory")
        .arg(dir)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dask-jobqueue failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("dask-jobqueue median scale-up s: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure from dask-jobqueue: {text}"))
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (sizes, rounds): (&[usize], usize) = if measuring {
        (&[8, 32], 3)
    } else {
        println!(
            "smoke run (cargo test): N = 2, one round; the figures below are not measurements"
        );
        (&[2], 1)
    };
    let Some((conf, python)) = common::slurm_and_python("distributed, dask_jobqueue") else {
        return;
    };
    let rt = common::runtime();
    rt.block_on(async {
        let dir = tempfile::Builder::new()
            .prefix("drover-dask-bench")
            .tempdir()
            .unwrap();
        for &n in sizes {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for round in 1..=rounds {
                tokio::task::block_in_place(|| common::drained(&conf));
                ours.push(drover_round(&python, &conf, n, dir.path()).await);
                tokio::task::block_in_place(|| common::drained(&conf));
                theirs.push(jobqueue_round(&python, &conf, n, dir.path()));
                println!(
                    "N={n} round {round}: drover {:.2} s, dask-jobqueue {:.2} s",
                    ours[round - 1],
                    theirs[round - 1]
                );
            }
            let (d, j) = (median(ours), median(theirs));
            println!(
                "N={n}: scale(N) to N Dask workers registered: drover median {d:.2} s, dask-jobqueue median {j:.2} s; \
                 ratio drover/dask-jobqueue {:.2}",
                d / j
            );
        }
    });
}
