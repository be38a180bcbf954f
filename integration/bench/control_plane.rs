//! Control-plane benchmarks (`cargo bench --bench control_plane`):
//!
//! 1. agent start to registered: a `drover worker` process spawned against a
//!    scheduler on loopback, until the scheduler has it; median of 20 runs;
//! 2. a `drover scheduler` process holding 10,000 and 100,000 simulated
//!    workers (`DROVER_BENCH_WORKERS=N`: N only) that heartbeat every 5 s,
//!    with TLS and without, each worker on a session (the design now) and
//!    on long polls (the design before sessions), side by side: its memory
//!    per worker, its CPU use, the time until all have registered; then,
//!    under that load, the latency of the worker counts and of a page of
//!    1,000 workers, the p99 latency of a task's assignment to an idle
//!    worker (from its submission to its arrival), and, for sessions, the
//!    time until every worker holds a session again after the scheduler
//!    is killed and restarted from its journal;
//! 3. real agents side by side (`DROVER_BENCH_AGENTS=N`, default 300):
//!    a `drover scheduler` holding N `drover worker` processes against
//!    HyperQueue's server holding N `hq worker` processes (when
//!    `integration/bench/hyperqueue-build` has built `hq`), see
//!    `peers/idle_agents.rs`.
//!
//! Each figure is printed beside its target, with the ratio, and each
//! configuration as one line other tools read:
//! `control_plane: workers=N tls=on design=session memory_per_worker_kib=X cpu_percent=Y register_s=Z ...`.

mod common;
#[path = "peers/idle_agents.rs"]
mod idle_agents;

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::procfs::{cpu_ticks, rss_kib};
use drover::protocol::Instruction;
use drover::scheduler::{Bind, Scheduler, SchedulerConfig};

const HEARTBEAT: Duration = Duration::from_secs(5);

/// The largest pool measured on long polls too (each held poll costs the
/// benchmark's own process about as much as the scheduler).
const MAX_POLLED: usize = 100_000;

/// Simulated workers per loopback source address: one address has about
/// 28,000 ephemeral ports to connect from.
const PER_SOURCE: usize = 20_000;

/// How the simulated workers talk to the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    /// One session each (`protocol::session`), as `drover worker` now does.
    Session,
    /// A long poll each, held or repeated (the design before sessions).
    Polls,
}

impl Design {
    fn name(self) -> &'static str {
        match self {
            Design::Session => "session",
            Design::Polls => "polls",
        }
    }
}

/// The sizes of one run: the real ones under `cargo bench`, small ones under
/// `cargo test`, which only checks that the benchmark still works.
struct Sizes {
    runs: usize,
    /// Tasks submitted one at a time to time their assignment.
    assignments: usize,
    /// Requests of the counts, and of a page, each.
    lookups: usize,
    /// Real agent processes on each server, drover's and HyperQueue's.
    agents: usize,
    rounds: usize,
    workers: &'static [usize],
    settle: Duration,
    cpu_window: Duration,
}

const MEASURE: Sizes = Sizes {
    runs: 20,
    assignments: 200,
    lookups: 50,
    agents: 300,
    rounds: 2,
    workers: &[10_000, 100_000],
    settle: Duration::from_secs(10),
    cpu_window: Duration::from_secs(30),
};

const SMOKE: Sizes = Sizes {
    runs: 2,
    assignments: 5,
    lookups: 5,
    agents: 3,
    rounds: 1,
    workers: &[200],
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
    // 100,000 workers need as many connections on each side: root may
    // lift the hard limit, anyone else gets what the hard limit allows.
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, 1 << 20, 1 << 20);
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-files limit");
    // The simulated workers all connect from 127.0.0.1; real ones come
    // from their own nodes. Lift the per-address cap for the scheduler
    // processes started below (they inherit the environment).
    std::env::set_var("DROVER_MAX_CONNECTIONS_PER_PEER", "1000000");
    let rt = common::runtime();
    if wanted("agent_start") {
        rt.block_on(agent_start_to_registered(sizes));
    }
    if wanted("scheduler_load") {
        for workers in bench_sizes(sizes) {
            scheduler_side_by_side(&rt, sizes, workers);
        }
    }
    if wanted("real_agents") {
        let agents = match std::env::var("DROVER_BENCH_AGENTS") {
            Ok(n) => n.parse().expect("DROVER_BENCH_AGENTS: a number of agents"),
            Err(_) => sizes.agents,
        };
        let window = idle_agents::Window {
            settle: sizes.settle,
            cpu: sizes.cpu_window,
        };
        rt.block_on(idle_agents::side_by_side(agents, sizes.rounds, &window));
    }
}

/// The pool sizes to measure: `DROVER_BENCH_WORKERS`, else the run's own.
fn bench_sizes(sizes: &Sizes) -> Vec<usize> {
    match std::env::var("DROVER_BENCH_WORKERS") {
        Ok(n) => vec![n
            .parse()
            .expect("DROVER_BENCH_WORKERS: a number of workers")],
        Err(_) => sizes.workers.to_vec(),
    }
}

/// Sessions and long polls, with TLS and without, at `workers`: every
/// configuration in turn, `sizes.rounds` times, so whatever else the
/// machine does weighs on all alike; medians reported.
fn scheduler_side_by_side(rt: &tokio::runtime::Runtime, sizes: &Sizes, workers: usize) {
    let configs = [
        (Design::Session, true),
        (Design::Polls, true),
        (Design::Session, false),
        (Design::Polls, false),
    ];
    let mut rows: Vec<((Design, bool), Load)> = Vec::new();
    for round in 0..sizes.rounds {
        for (design, tls) in configs {
            if design == Design::Polls && workers > MAX_POLLED {
                continue;
            }
            let m = rt.block_on(scheduler_under_load(sizes, workers, tls, design));
            println!("round {round}, {workers} workers, {design:?}, tls={tls}: {m:?}");
            rows.push(((design, tls), m));
        }
    }
    for config in configs {
        let median = |f: fn(&Load) -> f64| {
            let mut v: Vec<f64> = rows
                .iter()
                .filter(|r| r.0 == config)
                .map(|r| f(&r.1))
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let (Some(kib), Some(cpu), Some(reg), Some(assign), Some(summary), Some(page)) = (
            median(|m| m.kib_per_worker),
            median(|m| m.cpu_percent),
            median(|m| m.register_s),
            median(|m| m.assign_p99_ms),
            median(|m| m.summary_ms.1),
            median(|m| m.page_ms.1),
        ) else {
            continue;
        };
        let reattach = median(|m| m.reattach_s.unwrap_or(f64::NAN)).filter(|r| !r.is_nan());
        let (design, tls) = config;
        println!(
            "control_plane: workers={workers} tls={} design={} memory_per_worker_kib={kib:.2} cpu_percent={cpu:.2} register_s={reg:.2} reattach_s={} assign_p99_ms={assign:.2} summary_p99_ms={summary:.2} page_p99_ms={page:.2}",
            if tls { "on" } else { "off" },
            design.name(),
            reattach.map_or("-".to_string(), |r| format!("{r:.2}")),
        );
        if design == Design::Session && tls {
            report(
                &format!("scheduler memory per worker, TLS sessions ({workers} workers)"),
                kib,
                10.0,
                "KiB",
            );
            let cpu_target = if workers > 10_000 { 50.0 } else { 10.0 };
            report(
                &format!("scheduler CPU, TLS sessions ({workers} workers, 5s heartbeat)"),
                cpu,
                cpu_target,
                "% of one core",
            );
            report(
                &format!("registration of {workers} TLS workers from a cold start"),
                reg,
                10.0 * workers as f64 / 10_000.0,
                "s",
            );
            report(
                &format!("worker counts under load, p99 ({workers} TLS workers)"),
                summary,
                100.0,
                "ms",
            );
            report(
                &format!("a page of 1,000 workers under load, p99 ({workers} TLS workers)"),
                page,
                100.0,
                "ms",
            );
        }
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
    times.sort_by(f64::total_cmp);
    let median = (times[runs / 2 - 1] + times[runs / 2]) / 2.0;
    println!(
        "agent start to registered over {runs} runs: min {:.2} ms, median {median:.2} ms, max {:.2} ms",
        times[0],
        times[runs - 1]
    );
    report("agent start to registered, median", median, 50.0, "ms");
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
    /// From the first registration sent until every worker is registered
    /// and holds its session (or has its first poll answered).
    register_s: f64,
    rss_idle_kib: u64,
    rss_loaded_kib: u64,
    /// The scheduler's open files when measured: its connections.
    files: usize,
    lost: usize,
    /// A task's submission to its arrival at an idle worker: median, p99.
    assign_p50_ms: f64,
    assign_p99_ms: f64,
    /// The worker counts, and a page of 1,000 workers: median and p99.
    summary_ms: (f64, f64),
    page_ms: (f64, f64),
    /// Sessions only: from the restart of a killed scheduler until every
    /// worker holds a session again, and how many were lost by then.
    reattach_s: Option<f64>,
    lost_after_restart: Option<u64>,
}

/// Clients bound to loopback source addresses 127.0.0.2 and on, one per
/// `PER_SOURCE` workers, so that 100,000 connections find ports. Each
/// keeps a connection open between requests for up to `idle_for`.
fn clients(
    file: &std::path::Path,
    workers: usize,
    idle_for: Duration,
) -> Vec<drover::client::SchedulerClient> {
    let sf = drover::protocol::SchedulerFile::read(file).unwrap();
    (0..workers.div_ceil(PER_SOURCE))
        .map(|k| {
            let source = IpAddr::from([127, 0, 0, 2 + k as u8]);
            let http = drover::tls::http_client_builder(sf.certificate.clone())
                .pool_max_idle_per_host(PER_SOURCE)
                .pool_idle_timeout(idle_for)
                .local_address(source)
                .build()
                .unwrap();
            drover::client::SchedulerClient::with_http(http, sf.address.clone(), sf.token.clone())
        })
        .collect()
}

async fn scheduler_under_load(sizes: &Sizes, workers: usize, tls: bool, design: Design) -> Load {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("pool.journal");
    let mut args = vec![
        "--heartbeat-interval",
        "5s",
        "--journal",
        journal.to_str().unwrap(),
    ];
    if !tls {
        args.push("--insecure-plain-http");
    }
    let (child, file) = common::process::scheduler_process(dir.path(), &args).await;
    let pid = child.0.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid);
    // Each agent registers and then upgrades the same connection to its
    // session. Simulated workers share pooled clients instead, and a
    // registration burst leaves connections idle in the pool beside the
    // sessions, each holding an HTTP connection's buffers in the
    // scheduler: for sessions they are closed a second after their last
    // use (by then the registration's own session has taken its
    // connection). Polls keep theirs, as they poll on them again.
    let idle_for = match design {
        Design::Session => Duration::from_secs(1),
        Design::Polls => Duration::from_secs(90),
    };
    let clients = clients(&file, workers, idle_for);
    let counts = Arc::new(common::simulated::Counts::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..workers {
        let client = clients[i / PER_SOURCE].clone();
        let (counts, stopped) = (counts.clone(), stopped.clone());
        match design {
            Design::Session => {
                tasks.spawn(async move {
                    common::simulated::hold_session(client, i, counts, stopped).await;
                });
            }
            Design::Polls => {
                tasks.spawn(poll_forever(client, i, counts, stopped));
            }
        }
    }
    let opened = |c: &common::simulated::Counts| match design {
        Design::Session => c.sessions.load(Ordering::Relaxed),
        Design::Polls => c.registered.load(Ordering::Relaxed),
    };
    while opened(&counts) < workers {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let register_s = started.elapsed().as_secs_f64();
    println!("{workers} simulated workers registered ({design:?}) in {register_s:.1} s");
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
    let files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let hz = 100.0; // USER_HZ on Linux
    let cpu_percent = ticks as f64 / hz / secs * 100.0;
    let per_worker = (rss_loaded.saturating_sub(rss_idle)) as f64 / workers as f64;
    let lost = clients[0].worker_counts().await.unwrap().lost as usize;
    let latency = under_load(sizes, &clients[0], &counts, workers).await;
    let (reattach_s, lost_after_restart, _child) = match design {
        Design::Session => {
            let (s, lost, child) =
                reattach(child, dir.path(), &args, &clients[0], &counts, workers).await;
            (Some(s), Some(lost), child)
        }
        Design::Polls => (None, None, child),
    };
    assert_eq!(
        counts.unexpected.load(Ordering::Relaxed),
        0,
        "only acknowledgements and tasks"
    );
    stop.send(true).unwrap();
    tasks.abort_all();
    Load {
        kib_per_worker: per_worker,
        cpu_percent,
        system_share: system as f64 / ticks.max(1) as f64,
        register_s,
        rss_idle_kib: rss_idle,
        rss_loaded_kib: rss_loaded,
        files,
        lost,
        assign_p50_ms: latency.assign.0,
        assign_p99_ms: latency.assign.1,
        summary_ms: latency.summary,
        page_ms: latency.page,
        reattach_s,
        lost_after_restart,
    }
}

/// Latencies measured while every worker heartbeats: (median, p99) each.
struct Latency {
    assign: (f64, f64),
    summary: (f64, f64),
    page: (f64, f64),
}

/// The median and p99 of `ms`.
fn p50_p99(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.99))
}

async fn under_load(
    sizes: &Sizes,
    client: &drover::client::SchedulerClient,
    counts: &common::simulated::Counts,
    workers: usize,
) -> Latency {
    let mut summary = Vec::new();
    let mut page = Vec::new();
    for k in 0..sizes.lookups {
        let asked = Instant::now();
        let c = client.worker_counts().await.unwrap();
        summary.push(asked.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(c.total(), workers as u64);
        // Pages from across the pool, each a full 1,000 where there are.
        let after = (k * 997 % workers.saturating_sub(1000).max(1)) as u64;
        let asked = Instant::now();
        let p = client
            .worker_page(Some(drover::protocol::WorkerId(after)), 1000)
            .await
            .unwrap();
        page.push(asked.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(p.workers.len(), 1000.min(workers));
    }
    // One task at a time, so each finds idle workers and no queue.
    let spec = drover::protocol::TaskSpec {
        argv: vec!["true".into()],
        ..Default::default()
    };
    let mut assign = Vec::new();
    for _ in 0..sizes.assignments {
        let submitted = Instant::now();
        let id = client.submit(std::slice::from_ref(&spec)).await.unwrap()[0];
        let arrived = counts.received(id).await;
        assign.push(arrived.duration_since(submitted).as_secs_f64() * 1000.0);
    }
    Latency {
        assign: p50_p99(assign),
        summary: p50_p99(summary),
        page: p50_p99(page),
    }
}

/// Kills the scheduler and starts it again from its journal; returns the
/// seconds until every worker holds a session again, how many the
/// scheduler then counts lost, and the new scheduler.
async fn reattach(
    child: common::process::KillOnDrop,
    dir: &std::path::Path,
    args: &[&str],
    client: &drover::client::SchedulerClient,
    counts: &common::simulated::Counts,
    workers: usize,
) -> (f64, u64, common::process::KillOnDrop) {
    let opened = counts.sessions.load(Ordering::Relaxed);
    drop(child);
    let restarted = Instant::now();
    let (child, _) = common::process::scheduler_process(dir, args).await;
    while counts.sessions.load(Ordering::Relaxed) < opened + workers {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = restarted.elapsed().as_secs_f64();
    let lost = client.worker_counts().await.unwrap().lost;
    println!("{workers} sessions back {secs:.1} s after the restart, {lost} lost");
    (secs, lost, child)
}

/// Simulated worker `i` on long polls, the design before sessions.
async fn poll_forever(
    client: drover::client::SchedulerClient,
    i: usize,
    counts: Arc<common::simulated::Counts>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let req = common::simulated::worker(i);
    let reg = loop {
        match client.register(&req).await {
            Ok(r) => break r,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    counts.registered.fetch_add(1, Ordering::Relaxed);
    let interval = Duration::from_millis(reg.heartbeat_interval_ms);
    while !*stop.borrow() {
        match client.poll(reg.worker_id, interval).await {
            Ok(Instruction::Continue { next_poll_ms }) => {
                counts.answers.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(next_poll_ms)).await
            }
            Ok(Instruction::Run { tasks }) => {
                counts.receive(&tasks);
                let done = common::simulated::succeeded(&tasks);
                let _ = client.done(reg.worker_id, &done).await;
            }
            Ok(_) => {
                // Told to go (declared lost, say): it goes.
                counts.unexpected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
