//! Slurm's two backends side by side (`cargo bench --bench slurm_api`;
//! issue 19), on the local Slurm, taking turns at going first:
//!
//! 1. the start of a pool (`SlurmCluster::new`: its scheduler, Slurm's
//!    settings and, over the commands, the `sbatch --test-only` check of
//!    its job), then scale(32): seconds from the scale request until 32
//!    workers have registered, over Slurm's commands and over slurmrestd;
//! 2. holding those 32 workers for a minute: the Slurm calls each backend
//!    makes (commands run, or requests made) in that minute;
//! 3. the floor of each round: the same Slurm starting 32 trivial jobs
//!    (`common::floor`), which scale(32) is compared with. On a newer
//!    release, run it inside its root (`slurm/local-cluster exec`) with
//!    `DROVER_SLURM_RELEASE` set, and the output names the release.
//!
//! slurmrestd's address and token come from `SLURMRESTD_URL` and
//! `SLURM_JWT`, else from `slurm/local-cluster env --rest`. Under `cargo test` it
//! is a smoke run (4 workers, a 5 s hold): its figures are no measurement.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::cluster::SlurmCluster;
use drover::config::RestEndpoint;
use drover::slurm::rest::{Token, TokenSource};
use drover::slurm::{Slurm, SlurmCli, SlurmRest};

/// One backend's figures in one round.
struct Round {
    start_s: f64,
    scale_s: f64,
    calls_per_min: f64,
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (workers, hold, rounds) = match measuring {
        true => (32, Duration::from_secs(60), 3),
        false => (4, Duration::from_secs(5), 1),
    };
    if !measuring {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
    }
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| common::CONF.into());
    let Some(rest) = rest_settings() else {
        return;
    };
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let (mut cli, mut over_rest, mut floors) = (Vec::new(), Vec::new(), Vec::new());
    let release = std::env::var("DROVER_SLURM_RELEASE").unwrap_or_else(|_| "22.05".into());
    println!("Slurm {release}");
    for round in 0..rounds {
        common::drained(&conf);
        let f = rt.block_on(common::floor::floor(&conf, workers, dir.path()));
        println!(
            "round {}: floor ({workers} trivial jobs started) {f:.2} s",
            round + 1
        );
        floors.push(f);
        // Take turns at going first: Slurm's scheduling cycle favours no one.
        for rest_first in [round % 2 == 1, round % 2 == 0] {
            common::drained(&conf);
            let slurm: Arc<dyn Slurm> = match rest_first {
                true => {
                    let token = TokenSource::Env(Token::parse(&rest.1, "SLURM_JWT").unwrap());
                    Arc::new(
                        SlurmRest::new(rest.0.clone(), token, Duration::from_secs(60)).unwrap(),
                    )
                }
                false => Arc::new(SlurmCli::new().with_conf(&conf)),
            };
            let r = rt.block_on(hold_pool(slurm, workers, hold, &conf, dir.path()));
            let name = if rest_first { "slurmrestd" } else { "commands" };
            println!(
                "round {}: {name}: start {:.3} s, scale({workers}) {:.2} s; {:.1} Slurm calls per minute holding {workers} workers",
                round + 1,
                r.start_s,
                r.scale_s,
                r.calls_per_min
            );
            match rest_first {
                true => over_rest.push(r),
                false => cli.push(r),
            }
        }
    }
    let med = |v: &[Round], f: fn(&Round) -> f64| common::median(v.iter().map(f).collect());
    let (cb, rb) = (med(&cli, |r| r.start_s), med(&over_rest, |r| r.start_s));
    println!("start of a pool, median of {rounds}: slurmrestd {rb:.3} s, commands {cb:.3} s");
    let (cs, rs) = (med(&cli, |r| r.scale_s), med(&over_rest, |r| r.scale_s));
    let (cc, rc) = (
        med(&cli, |r| r.calls_per_min),
        med(&over_rest, |r| r.calls_per_min),
    );
    let f = common::median(floors);
    println!(
        "scale({workers}), median of {rounds}: slurmrestd {rs:.2} s, commands {cs:.2} s ({:.2}x); \
         floor {f:.2} s: commands {:.2}x the floor, slurmrestd {:.2}x",
        rs / cs,
        cs / f,
        rs / f
    );
    println!(
        "Slurm calls per minute holding {workers} workers: slurmrestd {rc:.1}, commands {cc:.1} ({:.2}x)",
        rc / cc
    );
}

/// slurmrestd's address and token, from the environment or the local Slurm.
fn rest_settings() -> Option<(RestEndpoint, String)> {
    let (url, token) = match (std::env::var("SLURMRESTD_URL"), std::env::var("SLURM_JWT")) {
        (Ok(u), Ok(t)) => (u, t),
        _ => match local_env() {
            Some(pair) => pair,
            None => {
                let why = "no slurmrestd: SLURMRESTD_URL and SLURM_JWT unset, and `slurm/local-cluster env --rest` printed none";
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{why}; under CI=true benchmarks never skip"
                );
                println!("SKIPPED: {why}");
                return None;
            }
        },
    };
    Some((url.parse().expect("a slurmrestd URL"), token))
}

/// `SLURMRESTD_URL` and `SLURM_JWT` as `slurm/local-cluster env --rest` prints them.
fn local_env() -> Option<(String, String)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
    let out = std::process::Command::new(script)
        .args(["env", "--rest"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(str::to_string)
    };
    Some((var("SLURMRESTD_URL")?, var("SLURM_JWT")?))
}

/// Scales a pool to `workers`, holds it `hold`, and closes it.
async fn hold_pool(
    slurm: Arc<dyn Slurm>,
    workers: usize,
    hold: Duration,
    conf: &str,
    dir: &std::path::Path,
) -> Round {
    let spec = drover::config::JobOptions::new()
        .job_name("bench-api")
        .cores(1u32)
        .memory("100MB".parse::<drover::config::Memory>().unwrap())
        .interface("ib0")
        .log_directory(dir)
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    let started = Instant::now();
    let cluster = SlurmCluster::new(spec, common::cluster_options(conf), slurm)
        .await
        .unwrap();
    let start_s = started.elapsed().as_secs_f64();
    let start = Instant::now();
    cluster.scale(workers);
    cluster
        .wait_for_workers(workers, Duration::from_secs(300))
        .await
        .unwrap();
    let scale_s = start.elapsed().as_secs_f64();
    let before = cluster.status().slurm_calls;
    tokio::time::sleep(hold).await;
    let calls = cluster.status().slurm_calls - before;
    cluster.close().await.unwrap();
    Round {
        start_s,
        scale_s,
        calls_per_min: calls as f64 * 60.0 / hold.as_secs_f64(),
    }
}
