//! HyperQueue's automatic allocation as a scale-up peer: a server, N
//! one-CPU tasks, and an allocation queue that may hold N one-worker
//! allocations (one CPU, 100 MB, as drover's jobs ask); the time from
//! adding the queue until N workers are connected, and from `hq server
//! stop` until none of its allocations is left in the queue. Everything
//! else is HyperQueue's default (its 5 s allocation tick among them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::KillOnDrop;
use super::slurm_floor::squeue;

/// The `hq` to measure: `DROVER_BENCH_HQ`, else what
/// `integration/bench/hyperqueue-build` built.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("DROVER_BENCH_HQ")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/drover-bench/hyperqueue/src/target/release/hq"));
    path.exists().then_some(path)
}

fn hq(bin: &Path, server_dir: &Path, conf: &str) -> Command {
    let mut cmd = Command::new(bin);
    // Tasks run, and write their `job-N/` output, where they were
    // submitted from: the server's own temporary directory.
    cmd.current_dir(server_dir)
        .arg("--server-dir")
        .arg(server_dir)
        .env("SLURM_CONF", conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn workers(bin: &Path, dir: &Path, conf: &str) -> usize {
    let out = hq(bin, dir, conf)
        .args(["worker", "list", "--output-mode", "quiet"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn allocations(conf: &str) -> usize {
    squeue(conf, &["-o", "%j"])
        .lines()
        .filter(|j| j.starts_with("hq"))
        .count()
}

/// (seconds until `n` workers are connected, seconds to close).
pub fn scale(bin: &Path, n: usize, conf: &str, dir: &Path) -> (f64, f64) {
    let server_dir = tempfile::Builder::new()
        .prefix("hq-server")
        .tempdir_in(dir)
        .unwrap();
    let sd = server_dir.path();
    let log = std::fs::File::create(sd.join("server.log")).unwrap();
    let _server = KillOnDrop(
        Command::new(bin)
            .args(["server", "start", "--host", "10.77.0.1", "--server-dir"])
            .arg(sd)
            .env("SLURM_CONF", conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !hq(bin, sd, conf)
        .args(["server", "info"])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "hq server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(hq(bin, sd, conf)
        .args(["submit", "--array", &format!("1-{n}"), "--cpus", "1"])
        .args(["--", "sleep", "600"]));
    let t0 = Instant::now();
    ok(hq(bin, sd, conf)
        .args([
            "alloc",
            "add",
            "slurm",
            "--time-limit",
            "10m",
            "--cpus",
            "1",
        ])
        .args([
            "--backlog",
            &n.to_string(),
            "--max-worker-count",
            &n.to_string(),
        ])
        .args(["--no-dry-run", "--", "-c", "1", "--mem=100M"]));
    while workers(bin, sd, conf) < n {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "HyperQueue: {} of {n} workers after 300 s",
            workers(bin, sd, conf)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let up = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    ok(hq(bin, sd, conf).args(["server", "stop"]));
    while allocations(conf) > 0 {
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "HyperQueue's allocations stay"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (up, t1.elapsed().as_secs_f64())
}
