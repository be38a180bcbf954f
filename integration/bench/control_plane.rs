//! Control-plane benchmarks (`cargo bench --bench control_plane`):
//!
//! 1. agent start to registered: a `drover worker` process spawned against a
//!    scheduler on loopback, until the scheduler has it; median of 20 runs;
//! 2. a `drover scheduler` process holding 10,000 simulated workers that
//!    heartbeat every 5 s: its memory per worker and its CPU use.
//!
//! Each figure is printed beside its target, with the ratio.

mod common;

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::protocol::Instruction;
use drover::scheduler::{Bind, Scheduler, SchedulerConfig};

const HEARTBEAT: Duration = Duration::from_secs(5);

/// The sizes of one run: the real ones under `cargo bench`, small ones under
/// `cargo test`, which only checks that the benchmark still works.
struct Sizes {
    runs: usize,
    rounds: usize,
    workers: usize,
    settle: Duration,
    cpu_window: Duration,
}

const MEASURE: Sizes = Sizes {
    runs: 20,
    rounds: 2,
    workers: 10_000,
    settle: Duration::from_secs(10),
    cpu_window: Duration::from_secs(30),
};

const SMOKE: Sizes = Sizes {
    runs: 2,
    rounds: 1,
    workers: 200,
    settle: Duration::from_millis(500),
    cpu_window: Duration::from_millis(500),
};

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters like libtest.
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes = if measuring { &MEASURE } else { &SMOKE };
    if !measuring {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-files limit");
    // The simulated workers all connect from 127.0.0.1; real ones come
    // from their own nodes. Lift the per-address cap for the scheduler
    // processes started below (they inherit the environment).
    std::env::set_var("DROVER_MAX_CONNECTIONS_PER_PEER", "1000000");
    let rt = common::runtime();
    if wanted("agent_start") {
        rt.block_on(agent_start_to_registered(sizes));
    }
    if wanted("scheduler_10k") {
        // TLS and plain HTTP side by side, alternating, so that whatever
        // else the machine does weighs on both alike.
        let mut rows = Vec::new();
        for round in 0..sizes.rounds {
            for tls in [true, false] {
                let m = rt.block_on(scheduler_at_10k_workers(sizes, tls));
                println!(
                    "round {round}, {}: {m:?}",
                    if tls { "TLS" } else { "plain HTTP" }
                );
                rows.push((tls, m));
            }
        }
        let median = |tls: bool, f: fn(&Load) -> f64| {
            let mut v: Vec<f64> = rows
                .iter()
                .filter(|r| r.0 == tls)
                .map(|r| f(&r.1))
                .collect();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        let (kib, cpu) = (
            median(true, |m| m.kib_per_worker),
            median(true, |m| m.cpu_percent),
        );
        let (kib_p, cpu_p) = (
            median(false, |m| m.kib_per_worker),
            median(false, |m| m.cpu_percent),
        );
        let workers = sizes.workers;
        report(
            &format!("scheduler memory per worker, TLS ({workers} workers)"),
            kib,
            10.0,
            "KiB",
        );
        report(
            &format!("scheduler CPU, TLS ({workers} workers, 5s heartbeat)"),
            cpu,
            10.0,
            "% of one core",
        );
        println!(
            "plain HTTP: {kib_p:.2} KiB per worker, {cpu_p:.2} % of one core; TLS/plain: memory {:.2}, CPU {:.2}",
            kib / kib_p,
            cpu / cpu_p
        );
    }
}

fn report(what: &str, measured: f64, target: f64, unit: &str) {
    println!(
        "{what}: {measured:.2} {unit} (target < {target} {unit}; measured/target = {:.3})",
        measured / target
    );
}

async fn agent_start_to_registered(sizes: &Sizes) {
    let runs = sizes.runs;
    let config = SchedulerConfig {
        heartbeat_interval: HEARTBEAT,
        ..SchedulerConfig::new(Bind::Host(IpAddr::from([127, 0, 0, 1])))
    };
    let scheduler = Scheduler::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scheduler.json");
    scheduler.write_scheduler_file(&file).unwrap();
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["worker", "--death-timeout", "10", "--scheduler-file"])
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        scheduler
            .wait_for_workers(1, Duration::from_secs(10))
            .await
            .expect("the agent registers");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        let id = scheduler.workers().last().unwrap().id;
        scheduler.retire(id, "benchmark run over");
        child.wait().unwrap();
        // Each run starts with no live worker.
        while scheduler.live_workers() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = (times[runs / 2 - 1] + times[runs / 2]) / 2.0;
    println!(
        "agent start to registered over {runs} runs: min {:.2} ms, median {median:.2} ms, max {:.2} ms",
        times[0],
        times[runs - 1]
    );
    report("agent start to registered, median", median, 50.0, "ms");
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// CPU time `pid` has used, user and system, in clock ticks.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state field as 3.
    (fields[11].parse().unwrap(), fields[12].parse().unwrap())
}

/// One scheduler's figures under load.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug and the closures above
struct Load {
    kib_per_worker: f64,
    cpu_percent: f64,
    /// The share of that CPU spent in the kernel (accepting, closing,
    /// moving bytes): what differs most between machines.
    system_share: f64,
    rss_idle_kib: u64,
    rss_loaded_kib: u64,
    lost: usize,
}

async fn scheduler_at_10k_workers(sizes: &Sizes, tls: bool) -> Load {
    let workers_wanted = sizes.workers;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--heartbeat-interval", "5s"];
    if !tls {
        args.push("--insecure-plain-http");
    }
    let (child, file) = common::process::scheduler_process(dir.path(), &args).await;
    let pid = child.0.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid);
    let client = common::process::pooled_client(&file, workers_wanted);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..workers_wanted {
        let client = client.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let req = common::simulated::worker(i);
            let reg = loop {
                match client.register(&req).await {
                    Ok(r) => break r,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            let interval = Duration::from_millis(reg.heartbeat_interval_ms);
            while !stop.load(Ordering::Relaxed) {
                match client.poll(reg.worker_id, interval).await {
                    Ok(Instruction::Continue { next_poll_ms }) => {
                        tokio::time::sleep(Duration::from_millis(next_poll_ms)).await
                    }
                    Ok(other) => panic!("unexpected instruction {other:?}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    loop {
        let n = client.workers().await.map(|w| w.len()).unwrap_or(0);
        if n >= workers_wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{workers_wanted} simulated workers registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let two heartbeat rounds pass so every worker holds its steady state.
    tokio::time::sleep(sizes.settle).await;
    let ticks0 = cpu_ticks(pid);
    let t0 = Instant::now();
    tokio::time::sleep(sizes.cpu_window).await;
    let ticks1 = cpu_ticks(pid);
    let (user, system) = (ticks1.0 - ticks0.0, ticks1.1 - ticks0.1);
    let ticks = user + system;
    let secs = t0.elapsed().as_secs_f64();
    let rss_loaded = rss_kib(pid);
    let hz = 100.0; // USER_HZ on Linux
    let cpu_percent = ticks as f64 / hz / secs * 100.0;
    let per_worker = (rss_loaded.saturating_sub(rss_idle)) as f64 / workers_wanted as f64;
    let workers = client.workers().await.unwrap();
    let lost = workers
        .iter()
        .filter(|w| w.state == drover::protocol::WorkerState::Lost)
        .count();
    stop.store(true, Ordering::Relaxed);
    drop(child);
    tasks.abort_all();
    Load {
        kib_per_worker: per_worker,
        cpu_percent,
        system_share: system as f64 / ticks.max(1) as f64,
        rss_idle_kib: rss_idle,
        rss_loaded_kib: rss_loaded,
        lost,
    }
}
