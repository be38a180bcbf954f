//! SlurmCluster benchmarks on the real local Slurm (`cargo bench --bench
//! cluster`), measured side by side in one run:
//!
//! - scale(32) until 32 workers registered, against the floor: the time the
//!   same Slurm takes to start 32 trivial jobs (one array, until all run);
//! - scale(0) from 32 until no job of the cluster is left in `squeue`;
//! - Slurm commands per minute while holding 8 and 32 workers steady;
//! - the same scale-up with dask-jobqueue's SLURMCluster, when
//!   `slurm/python-env` has made its environment.
//!
//! Start latency on Slurm is bimodal (its scheduling cycle), so each
//! measurement is repeated and medians are compared.

mod common;

use common::floor::{floor, squeue_count};
use common::median;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use drover::cluster::SlurmCluster;
use drover::config::{JobOptions, Timeout};
use drover::slurm::{Slurm, SlurmCli};

const CONF: &str = "/var/lib/drover-slurm/slurm.conf";

struct Sizes {
    workers: usize,
    rounds: usize,
    steady: Duration,
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes = if measuring {
        Sizes {
            workers: 32,
            rounds: 5,
            steady: Duration::from_secs(60),
        }
    } else {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
        Sizes {
            workers: 2,
            rounds: 1,
            steady: Duration::from_secs(2),
        }
    };
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| CONF.into());
    let up = Command::new("sinfo").env("SLURM_CONF", &conf).output();
    if !up.map(|o| o.status.success()).unwrap_or(false) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("no Slurm at SLURM_CONF={conf}; start it with slurm/local-cluster up");
        }
        println!("SKIPPED: no Slurm at SLURM_CONF={conf}; start it with slurm/local-cluster up");
        return;
    }
    // The benchmark needs the cluster to itself; jobs just ending may linger a moment.
    let waiting = Instant::now();
    loop {
        let busy = Command::new("squeue")
            .arg("-h")
            .env("SLURM_CONF", &conf)
            .output()
            .unwrap();
        if busy.stdout.is_empty() {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the benchmark needs an empty cluster; queued now:\n{}",
            String::from_utf8_lossy(&busy.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rt = common::runtime();
    rt.block_on(run(&sizes, &conf, measuring));
}

async fn run(sizes: &Sizes, conf: &str, measuring: bool) {
    let n = sizes.workers;
    let dir = tempfile::Builder::new()
        .prefix("drover-bench")
        .tempdir()
        .unwrap();
    let spec = JobOptions::new()
        .job_name("drover-bench")
        .cores(1u32)
        .interface("ib0")
        .log_directory(dir.path())
        .death_timeout("30".parse::<Timeout>().unwrap())
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    let options = common::cluster_options(conf);
    let slurm = SlurmCli::new().with_conf(conf);
    let cluster = SlurmCluster::new(spec, options.clone(), slurm.clone())
        .await
        .unwrap();
    let poll = options.poll_interval;

    let (mut floors, mut ups, mut downs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..sizes.rounds {
        floors.push(floor(conf, n, dir.path()).await);
        let start = Instant::now();
        cluster.scale(n);
        cluster
            .wait_for_workers(n, Duration::from_secs(300))
            .await
            .unwrap();
        ups.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        cluster.scale(0);
        while squeue_count(conf, cluster.job_name(), None) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        downs.push(start.elapsed().as_secs_f64());
        // Let retired workers finish deregistering before the next round.
        while cluster.scheduler().live_workers() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "round {}: floor {:.2} s, drover scale({n}) {:.2} s, scale(0) {:.2} s",
            round + 1,
            floors[round],
            ups[round],
            downs[round]
        );
    }
    let (f, u, d) = (median(floors), median(ups), median(downs));
    println!(
        "scale({n}) to {n} registered: median {u:.2} s; floor ({n} trivial jobs started): median {f:.2} s; \
         ratio {:.2} (target at most 1.5)",
        u / f
    );
    println!("scale(0) from {n} until no job in squeue: median {d:.3} s (target under 1 s)");

    // Slurm commands while holding the pool steady, at two pool sizes.
    for size in [n / 4, n].into_iter().filter(|s| *s > 0) {
        cluster.scale(size);
        cluster
            .wait_for_workers(size, Duration::from_secs(300))
            .await
            .unwrap();
        tokio::time::sleep(2 * poll).await;
        let before = slurm.calls();
        tokio::time::sleep(sizes.steady).await;
        let per_minute = (slurm.calls() - before) as f64 * 60.0 / sizes.steady.as_secs_f64();
        println!(
            "Slurm commands per minute holding {size} workers: {per_minute:.1} (poll interval {:?})",
            poll
        );
    }
    cluster.close().await.unwrap();

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python-venv/bin/python");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/bench/dask_jobqueue_scale.py");
    if !measuring {
        return;
    }
    if python.exists() {
        let out = Command::new(&python)
            .arg(&script)
            .args([
                "--workers",
                &n.to_string(),
                "--rounds",
                &sizes.rounds.to_string(),
            ])
            .arg("--log-directory")
            .arg(dir.path())
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            println!(
                "dask-jobqueue run failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(dj) = text
            .lines()
            .find_map(|l| l.strip_prefix("dask-jobqueue median scale-up s: "))
            .and_then(|v| v.trim().parse::<f64>().ok())
        {
            println!(
                "drover scale({n}) {u:.2} s vs dask-jobqueue {dj:.2} s: drover takes {:.2} of dask-jobqueue's time ({:.1}x faster)",
                u / dj,
                dj / u
            );
        }
    } else {
        println!("dask-jobqueue reference not run: create its environment with slurm/python-env");
    }
}
