//! Scale-up at every size, side by side on the real local Slurm (`cargo
//! bench --bench scale_up`; issue 16): for each N, the time from the
//! request until N workers are up, and the time to close them until the
//! queue is empty, for
//!
//! - Slurm's floor: one array of N trivial jobs until all run, and the
//!   same jobs paced (arrays one pass deep, each once the previous one has
//!   been through Slurm's pass): the best this Slurm allows;
//! - `drover run --workers N` (until its command starts, which is once N
//!   workers have registered);
//! - HyperQueue's automatic allocation (when `integration/bench/
//!   hyperqueue-build` has built `hq`, or `DROVER_BENCH_HQ` names one);
//! - dask-jobqueue's SLURMCluster up to 32 (when `slurm/python-env` made
//!   its environment).
//!
//! Sizes: `DROVER_BENCH_SIZES` (default 8,32,128,256), rounds:
//! `DROVER_BENCH_ROUNDS` (default 3); the local Slurm must hold the largest
//! N at one CPU and 100 MB a job (`slurm/local-cluster up --cpus 128
//! --memory 140000`). Under `cargo test` it is a smoke run at N=2. In each
//! round the two floors and drover take turns at going first, then
//! HyperQueue; each starts once Slurm has been quiet for a pass.

mod common;

#[path = "peers/hyperqueue.rs"]
mod hyperqueue;
#[path = "peers/slurm_floor.rs"]
mod slurm_floor;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::median;
use slurm_floor::{squeue, Floor};

fn sizes(measuring: bool) -> (Vec<usize>, usize) {
    if !measuring {
        return (vec![2], 1);
    }
    let list = std::env::var("DROVER_BENCH_SIZES").unwrap_or_else(|_| "8,32,128,256".into());
    let sizes = list
        .split(',')
        .map(|s| s.trim().parse().expect("DROVER_BENCH_SIZES: numbers"))
        .collect();
    let rounds = std::env::var("DROVER_BENCH_ROUNDS")
        .ok()
        .map(|r| r.parse().expect("DROVER_BENCH_ROUNDS: a number"))
        .unwrap_or(3);
    (sizes, rounds)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    if !measuring {
        println!("smoke run (cargo test): N=2, one round; the figures are not measurements");
    }
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| common::CONF.into());
    let up = Command::new("sinfo").env("SLURM_CONF", &conf).output();
    if !up.map(|o| o.status.success()).unwrap_or(false) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Slurm at SLURM_CONF={conf}"
        );
        println!("SKIPPED: no Slurm at SLURM_CONF={conf}; start it with slurm/local-cluster up");
        return;
    }
    let (sizes, rounds) = sizes(measuring);
    let cpus = slurm_floor::total_cpus(&conf);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(
        cpus >= largest,
        "the local Slurm has {cpus} CPUs, N={largest} needs as many: \
         slurm/local-cluster up --cpus {} --memory 140000",
        largest.div_ceil(2)
    );
    common::drained(&conf);
    let floor = Floor::new(&conf);
    println!("Slurm's scheduler: {:?}", floor.config);
    let hq = measuring.then(hyperqueue::binary).flatten();
    match &hq {
        Some(p) => println!("HyperQueue: {}", p.display()),
        None if measuring => println!("HyperQueue: not built (integration/bench/hyperqueue-build)"),
        None => {}
    }
    let dir = tempfile::Builder::new()
        .prefix("drover-scale-up")
        .tempdir()
        .unwrap();
    let mut table = Vec::new();
    for &n in &sizes {
        table.push(measure(
            n,
            rounds,
            &floor,
            hq.as_deref(),
            dir.path(),
            measuring,
        ));
    }
    println!();
    println!("| N | floor: one array | floor: paced | best floor | drover run | drover/best floor | HyperQueue | dask-jobqueue | close: drover | close: HyperQueue | close: dask-jobqueue |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &table {
        println!("{}", row.markdown());
    }
    for row in &table {
        row.verdicts();
    }
    let others = if measuring { 1000 } else { 10 };
    let (ours, json, bytes) = slurm_floor::listing_cost(floor.conf(), others);
    println!(
        "listing a pool's jobs with {others} other jobs queued: {ours:.1} ms (run, parsed, \
         filtered); squeue --json alone {json:.1} ms, {bytes} bytes"
    );
}

/// Medians for one N.
struct Row {
    n: usize,
    array: f64,
    paced: f64,
    drover: f64,
    drover_close: f64,
    drover_cpu: f64,
    hq: Option<(f64, f64)>,
    djq: Option<(f64, f64)>,
}

fn secs(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| format!("{s:.2} s"))
}

impl Row {
    /// The best floor: the lower of the two floors' medians.
    fn best_floor(&self) -> f64 {
        self.array.min(self.paced)
    }

    fn markdown(&self) -> String {
        format!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} | {} | {} | {:.2} s | {} | {} |",
            self.n,
            self.array,
            self.paced,
            self.best_floor(),
            self.drover,
            self.drover / self.best_floor(),
            secs(self.hq.map(|h| h.0)),
            secs(self.djq.map(|d| d.0)),
            self.drover_close,
            secs(self.hq.map(|h| h.1)),
            secs(self.djq.map(|d| d.1)),
        )
    }

    fn verdicts(&self) {
        let ratio = self.drover / self.best_floor();
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "N={}: drover run used {:.2} CPU-s, {:.1} ms per worker",
            self.n,
            self.drover_cpu,
            self.drover_cpu * 1000.0 / self.n as f64
        );
        println!(
            "N={}: drover {:.2} s = {ratio:.2}x the best floor (target at most 1.2: {})",
            self.n,
            self.drover,
            met(ratio <= 1.2)
        );
        if let Some((up, _)) = self.hq {
            println!(
                "N={}: drover/HyperQueue {:.2} (target under 1: {})",
                self.n,
                self.drover / up,
                met(self.drover < up)
            );
        }
        if let Some((up, _)) = self.djq {
            println!(
                "N={}: drover/dask-jobqueue {:.2} (target under 1: {})",
                self.n,
                self.drover / up,
                met(self.drover < up)
            );
        }
    }
}

fn measure(
    n: usize,
    rounds: usize,
    floor: &Floor,
    hq: Option<&Path>,
    dir: &Path,
    measuring: bool,
) -> Row {
    let (mut array, mut paced, mut ups, mut closes) = (vec![], vec![], vec![], vec![]);
    let mut cpus = vec![];
    let (mut hq_ups, mut hq_closes) = (vec![], vec![]);
    for round in 1..=rounds {
        // The three take turns at going first: what ran before (and how
        // Slurm's one-second tick falls after it) is the same for each
        // over the rounds, not always the same for one.
        for turn in 0..3 {
            floor.settle();
            match (turn + round - 1) % 3 {
                0 => array.push(floor.array(n)),
                1 => paced.push(floor.paced(n)),
                _ => {
                    let (up, close, cpu) = drover_run(n, floor.conf(), dir);
                    ups.push(up);
                    closes.push(close);
                    cpus.push(cpu);
                }
            }
        }
        let up = ups[round - 1];
        let close = closes[round - 1];
        let cpu = cpus[round - 1];
        let mut line = format!(
            "N={n} round {round}: floor array {:.2} s, paced {:.2} s, drover {up:.2} s (close {close:.2} s, CPU {cpu:.2} s)",
            array[round - 1],
            paced[round - 1]
        );
        if let Some(hq) = hq {
            floor.settle();
            let (up, close) = hyperqueue::scale(hq, n, floor.conf(), dir);
            line += &format!(", HyperQueue {up:.2} s (close {close:.2} s)");
            hq_ups.push(up);
            hq_closes.push(close);
        }
        println!("{line}");
    }
    let djq = (measuring && n <= 32)
        .then(|| dask_jobqueue(n, rounds, floor, dir))
        .flatten();
    Row {
        n,
        array: median(array),
        paced: median(paced),
        drover: median(ups),
        drover_close: median(closes),
        drover_cpu: median(cpus),
        hq: (!hq_ups.is_empty()).then(|| (median(hq_ups), median(hq_closes))),
        djq,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// CPU seconds (user and system) of the children waited for so far.
fn children_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}

/// `drover run --workers n`: seconds until its command starts (every
/// worker registered), from the command's end until no job of the pool is
/// left in the queue, and the CPU seconds `drover run` used (its Slurm
/// commands included). Its idle workers must end COMPLETED.
fn drover_run(n: usize, conf: &str, dir: &Path) -> (f64, f64, f64) {
    let cpu = children_cpu();
    let mark = dir.join(format!("drover-up-{n}"));
    let _ = std::fs::remove_file(&mark);
    let name = format!("drover-bench-{n}");
    let t0 = unix_now();
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["run", "--workers", &n.to_string(), "--job-name", &name])
        .args(["--cores", "1", "--memory", "100M", "--walltime", "10m"])
        .args(["--interface", "ib0", "--scheduler-interface", "drvbr0"])
        .arg("--log-directory")
        .arg(dir.join("logs"))
        .args(["--", "sh", "-c", "date +%s.%N > \"$0\""])
        .arg(&mark)
        .env("SLURM_CONF", conf)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drover run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cpu = children_cpu() - cpu;
    let up_at: f64 = std::fs::read_to_string(&mark)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let prefix = format!("{name}-");
    let start = Instant::now();
    while squeue(conf, &["-o", "%j"])
        .lines()
        .any(|j| j.starts_with(&prefix))
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the pool's jobs stay"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let closed = unix_now();
    let ended = squeue(conf, &["-t", "all", "-o", "%j %T"]);
    let not_completed: Vec<&str> = ended
        .lines()
        .filter(|l| l.starts_with(&prefix) && !l.ends_with(" COMPLETED"))
        .collect();
    assert!(
        not_completed.is_empty(),
        "idle workers' jobs must end COMPLETED: {not_completed:?}"
    );
    (up_at - t0, closed - up_at, cpu)
}

/// dask-jobqueue's medians (scale-up, close), from its own script.
fn dask_jobqueue(n: usize, rounds: usize, floor: &Floor, dir: &Path) -> Option<(f64, f64)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python: PathBuf = root.join("target/python-venv/bin/python");
    if !python.exists() {
        println!("dask-jobqueue: no Python environment (slurm/python-env)");
        return None;
    }
    let out = Command::new(&python)
        .arg(root.join("integration/bench/dask_jobqueue_scale.py"))
        .args(["--workers", &n.to_string(), "--rounds", &rounds.to_string()])
        .arg("--log-directory")
        .arg(dir)
        .arg("--settle")
        .arg((floor.config.batch_sched_delay.as_secs() + 1).to_string())
        .env("SLURM_CONF", floor.conf())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    match (
        value("dask-jobqueue median scale-up s: "),
        value("dask-jobqueue median close s: "),
    ) {
        (Some(up), Some(close)) => Some((up, close)),
        _ => {
            println!(
                "dask-jobqueue failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
    }
}
