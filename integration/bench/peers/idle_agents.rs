//! Real agents side by side: a `drover scheduler` holding N `drover
//! worker` processes against HyperQueue's server holding N `hq worker`
//! processes. Both encrypt (drover: TLS, pinned; HyperQueue: its own
//! authenticated encryption, on by default), both heartbeat every 5 s,
//! neither runs work, neither keeps a journal. HyperQueue's worker
//! protocol is its own and not ours to re-implement, so its workers cannot
//! be simulated cheaply: this compares at a size where N real processes of
//! each fit on the machine, and reports the server's memory per worker,
//! its CPU, the time until all N are connected, and one agent's memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::procfs::{cpu_percent_over, rss_kib};
use super::common::KillOnDrop;

/// What holding `workers` idle agents cost one server.
#[derive(Debug)]
pub struct Idle {
    pub server_kib_per_worker: f64,
    pub server_cpu_percent: f64,
    pub connect_s: f64,
    /// The median agent's resident memory.
    pub agent_rss_kib: u64,
}

/// How long to wait for the agents, after they are all started, and how
/// long to measure the server's CPU once they are connected.
pub struct Window {
    pub settle: Duration,
    pub cpu: Duration,
}

/// The `hq` to measure: `DROVER_BENCH_HQ`, else what
/// `integration/bench/hyperqueue-build` built.
pub fn hq_binary() -> Option<PathBuf> {
    let path = std::env::var_os("DROVER_BENCH_HQ")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/drover-bench/hyperqueue/src/target/release/hq"));
    path.exists().then_some(path)
}

/// N `drover worker` agents on one TLS scheduler on loopback.
pub async fn drover(workers: usize, window: &Window) -> Idle {
    let dir = tempfile::tempdir().unwrap();
    let (server, file) =
        super::common::process::scheduler_process(dir.path(), &["--heartbeat-interval", "5s"])
            .await;
    let client = drover::client::SchedulerClient::from_path(&file).unwrap();
    let pid = server.0.id();
    let start = |_| {
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["worker", "--death-timeout", "30", "--scheduler-file"])
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .unwrap()
    };
    let client = &client;
    let connected = move || async move {
        client
            .worker_counts()
            .await
            .map_or(0, |c| c.running as usize)
    };
    measure(pid, workers, window, start, connected).await
}

/// N `hq worker` agents on one HyperQueue server on loopback, each
/// offering one CPU and detecting nothing else, with drover's heartbeat.
pub async fn hyperqueue(bin: &Path, workers: usize, window: &Window) -> Idle {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_path_buf();
    let hq = |args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.current_dir(&sd)
            .args(args)
            .arg("--server-dir")
            .arg(&sd)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let server = hq(&["server", "start", "--host", "127.0.0.1"])
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let started = Instant::now();
    while !hq(&["server", "info"]).status().unwrap().success() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hq server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = |_| {
        hq(&["worker", "start", "--manager", "none"])
            .args(["--detect-resources", "none", "--cpus", "1"])
            .args(["--heartbeat", "5s"])
            .spawn()
            .map(KillOnDrop)
            .unwrap()
    };
    let connected = || {
        let out = hq(&["worker", "list", "--output-mode", "quiet"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let n = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        std::future::ready(n)
    };
    measure(server.0.id(), workers, window, start, connected).await
}

/// Starts `workers` agents with `start`, waits until `connected` counts
/// them all, lets them settle, and measures the server `pid`.
async fn measure<Fut: std::future::Future<Output = usize>>(
    pid: u32,
    workers: usize,
    window: &Window,
    start: impl Fn(usize) -> KillOnDrop,
    connected: impl Fn() -> Fut,
) -> Idle {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid);
    let t0 = Instant::now();
    let agents: Vec<KillOnDrop> = (0..workers).map(start).collect();
    loop {
        let n = connected().await;
        if n >= workers {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{n} of {workers} agents connected after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connect_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(window.settle).await;
    let server_cpu_percent = cpu_percent_over(pid, window.cpu).await;
    let loaded = rss_kib(pid);
    let mut agent: Vec<u64> = agents.iter().map(|a| rss_kib(a.0.id())).collect();
    agent.sort_unstable();
    Idle {
        server_kib_per_worker: loaded.saturating_sub(idle) as f64 / workers as f64,
        server_cpu_percent,
        connect_s,
        agent_rss_kib: agent[agent.len() / 2],
    }
}

/// Both servers with `agents` agents each, `rounds` times in turn; the
/// medians printed one line per server (`control_plane: workers=N
/// agents=real server=...`) and as ratios, drover's over HyperQueue's.
pub async fn side_by_side(agents: usize, rounds: usize, window: &Window) {
    let hq = hq_binary();
    if hq.is_none() {
        println!(
            "HyperQueue: not built (integration/bench/hyperqueue-build); drover's agents alone"
        );
    }
    let mut rows: Vec<(&str, Idle)> = Vec::new();
    for round in 0..rounds {
        let d = drover(agents, window).await;
        println!("round {round}, {agents} real agents, drover: {d:?}");
        rows.push(("drover", d));
        if let Some(bin) = &hq {
            let h = hyperqueue(bin, agents, window).await;
            println!("round {round}, {agents} real agents, hyperqueue: {h:?}");
            rows.push(("hyperqueue", h));
        }
    }
    let median = |server: &str, f: fn(&Idle) -> f64| {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|r| r.0 == server)
            .map(|r| f(&r.1))
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    type Figure = (&'static str, fn(&Idle) -> f64);
    let figures: [Figure; 4] = [
        ("memory_per_worker_kib", |i| i.server_kib_per_worker),
        ("cpu_percent", |i| i.server_cpu_percent),
        ("connect_s", |i| i.connect_s),
        ("agent_rss_kib", |i| i.agent_rss_kib as f64),
    ];
    for server in ["drover", "hyperqueue"] {
        let line: Vec<String> = figures
            .iter()
            .filter_map(|(name, f)| median(server, *f).map(|m| format!("{name}={m:.2}")))
            .collect();
        if !line.is_empty() {
            println!(
                "control_plane: workers={agents} agents=real server={server} encrypted=on {}",
                line.join(" ")
            );
        }
    }
    for (name, f) in figures {
        if let (Some(d), Some(h)) = (median("drover", f), median("hyperqueue", f)) {
            println!(
                "{agents} real agents, {name}: drover {d:.2}, HyperQueue {h:.2} (drover/HyperQueue = {:.3})",
                d / h
            );
        }
    }
}
