//! Jobs that end, measured (`cargo bench --bench ends`; issue 32), on the
//! local Slurm (this machine's 22.05, over its commands):
//!
//! 1. what a pool asks of Slurm while holding 32 workers for a minute,
//!    quiet against while its jobs end (4 of them cancelled from outside
//!    every 10 s, each replaced), side by side: listings (`squeue`) and
//!    accounting calls (`sacct`) per minute, and the ends. So that ended
//!    jobs leave Slurm's listing (and are read from `sacct`, as at a busy
//!    site) within the minute, the measured run sets `MinJobAge=2` for its
//!    span (`slurm/local-cluster set`, put back after);
//! 2. from a preemption to the next worker: a pool of 2 on `scavenger`,
//!    preempted by a job of `urgent` on every node, requeued in place:
//!    seconds from the urgent job's submission to the pool's workers
//!    stopped, and to its first worker registered again.
//!
//! Under `cargo test` it is a smoke run (4 workers, 10 s, no MinJobAge
//! change, no preemption): its figures are no measurement.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::counting::Counting;
use drover::cluster::SlurmCluster;
use drover::slurm::{Slurm, SlurmCli};

/// One hold's figures.
struct Hold {
    listings_per_min: f64,
    sacct_per_min: f64,
    jobs_asked: u64,
    ended: usize,
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (workers, hold) = match measuring {
        true => (32, Duration::from_secs(60)),
        false => (4, Duration::from_secs(10)),
    };
    if !measuring {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
    }
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| common::CONF.into());
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    common::drained(&conf);
    let _reset = measuring.then(|| {
        local_cluster(&["set", "--slurm", "22.05", "MinJobAge=2"]);
        ResetOverrides
    });
    let quiet = rt.block_on(hold_pool(&conf, workers, hold, 0, dir.path()));
    report("quiet", workers, &quiet);
    common::drained(&conf);
    let cut = (workers / 8).max(1);
    let ending = rt.block_on(hold_pool(&conf, workers, hold, cut, dir.path()));
    report("jobs ending", workers, &ending);
    println!(
        "ends: sacct calls per minute holding {workers} workers: {:.1} with {} jobs ending against {:.1} quiet; \
         listings {:.1} against {:.1} ({:.2}x)",
        ending.sacct_per_min,
        ending.ended,
        quiet.sacct_per_min,
        ending.listings_per_min,
        quiet.listings_per_min,
        ending.listings_per_min / quiet.listings_per_min.max(1e-9)
    );
    if measuring {
        common::drained(&conf);
        rt.block_on(preemption(&conf, dir.path()));
    }
}

fn report(what: &str, workers: usize, h: &Hold) {
    println!(
        "ends: {what}: holding {workers} workers, {:.1} listings and {:.1} sacct calls per minute \
         ({} jobs asked about), {} jobs ended",
        h.listings_per_min, h.sacct_per_min, h.jobs_asked, h.ended
    );
}

/// Scales a pool to `workers`, holds it `hold` while `cut` of its running
/// jobs are cancelled from outside every 10 s, and closes it.
async fn hold_pool(
    conf: &str,
    workers: usize,
    hold: Duration,
    cut: usize,
    dir: &std::path::Path,
) -> Hold {
    let counting = Counting::new(Arc::new(SlurmCli::new().with_conf(conf)));
    let slurm: Arc<dyn Slurm> = counting.clone();
    let cluster = SlurmCluster::new(
        spec("bench-ends", None, dir),
        common::cluster_options(conf),
        slurm,
    )
    .await
    .unwrap();
    cluster.scale(workers);
    cluster
        .wait_for_workers(workers, Duration::from_secs(300))
        .await
        .unwrap();
    let (l0, f0, j0) = counting.counts();
    let start = Instant::now();
    let mut ended = 0;
    while start.elapsed() < hold {
        if cut > 0 {
            let running: Vec<String> = cluster
                .status()
                .jobs
                .iter()
                .filter(|j| j.state == drover::slurm::JobState::Running)
                .filter_map(|j| j.job_id.map(|i| i.to_string()))
                .take(cut)
                .collect();
            ended += running.len();
            if !running.is_empty() {
                slurm_cmd(
                    conf,
                    "scancel",
                    &running.iter().map(String::as_str).collect::<Vec<_>>(),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(10).min(hold)).await;
    }
    let (l1, f1, j1) = counting.counts();
    cluster.close().await.unwrap();
    let per_min = |n: u64| n as f64 * 60.0 / hold.as_secs_f64();
    Hold {
        listings_per_min: per_min(l1 - l0),
        sacct_per_min: per_min(f1 - f0),
        jobs_asked: j1 - j0,
        ended,
    }
}

/// A pool of 2 on `scavenger` preempted by a job of `urgent` on every
/// node: seconds to its workers stopped and to the first one back.
async fn preemption(conf: &str, dir: &std::path::Path) {
    let slurm: Arc<dyn Slurm> = Arc::new(SlurmCli::new().with_conf(conf));
    let cluster = SlurmCluster::new(
        spec("bench-preempt", Some("scavenger"), dir),
        common::cluster_options(conf),
        slurm,
    )
    .await
    .unwrap();
    cluster.scale(2);
    cluster
        .wait_for_workers(2, Duration::from_secs(120))
        .await
        .unwrap();
    let nodes = slurm_cmd(conf, "sinfo", &["-h", "-p", "urgent", "-o", "%D"]);
    let start = Instant::now();
    slurm_cmd(
        conf,
        "sbatch",
        &[
            "-p",
            "urgent",
            "-N",
            nodes.trim(),
            "--exclusive",
            "-J",
            "drover-bench-urgent",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 5",
        ],
    );
    while cluster.status().registered > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never preempted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = start.elapsed().as_secs_f64();
    while cluster.status().registered == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(400),
            "no worker came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = start.elapsed().as_secs_f64();
    let status = cluster.status();
    println!(
        "ends: preemption: workers stopped {stopped:.1} s after the urgent job's submission, \
         the first back {back:.1} s after it ({:.1} s after the stop); jobs submitted {}, preemptions {}",
        back - stopped,
        status.submitted,
        status.preemptions
    );
    cluster.close().await.unwrap();
}

fn spec(name: &str, queue: Option<&str>, dir: &std::path::Path) -> drover::config::JobSpec {
    let mut o = drover::config::JobOptions::new()
        .job_name(name)
        .cores(1u32)
        .memory("100MB".parse::<drover::config::Memory>().unwrap())
        .interface("ib0")
        .log_directory(dir)
        .drover_bin(env!("CARGO_BIN_EXE_drover"));
    if let Some(q) = queue {
        o = o.queue(q);
    }
    o.build().unwrap()
}

fn slurm_cmd(conf: &str, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn local_cluster(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
    let out = Command::new(script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "local-cluster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Puts the local Slurm's settings back, however the run ends.
struct ResetOverrides;

impl Drop for ResetOverrides {
    fn drop(&mut self) {
        local_cluster(&["set", "--slurm", "22.05", "--reset"]);
    }
}
