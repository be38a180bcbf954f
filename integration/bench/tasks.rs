//! Task benchmarks (`cargo bench --bench tasks`), each on a `drover
//! scheduler` process on loopback so that only it is measured:
//!
//! 1. throughput of trivial tasks (`true`) through 4 and 16 `drover worker`
//!    processes on this machine (process spawning included);
//! 2. the scheduler's own cost per task without process spawning: workers
//!    simulated in this process (the real protocol) report every task done
//!    at once; wall time per task and the scheduler's CPU time per task;
//! 3. the scheduler's memory with 100,000 queued tasks;
//! 4. the journal (`--journal`): 1 and 2 with it against without, side by
//!    side, its bytes per task, and the time a scheduler killed with
//!    100,000 finished tasks in its journal takes to serve again; and the
//!    same with compaction (a snapshot whenever the journal has grown by
//!    1 MiB and by its last snapshot's size), with the snapshots' pauses;
//! 5. what keeping the pool's accounting (the tasks' busy time) costs: 2
//!    with it on (the default) and off (`--no-accounting`), alternating,
//!    the scheduler's CPU per task and its memory after the tasks.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover::client::SchedulerClient;
use drover::protocol::{Instruction, SchedulerFile};
use drover::tasks::TaskSpec;

struct Sizes {
    spawned_tasks: usize,
    simulated_tasks: usize,
    queued_tasks: usize,
}

use common::procfs::rss_kib;
use common::KillOnDrop;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes = if measuring {
        Sizes {
            spawned_tasks: 5_000,
            simulated_tasks: 100_000,
            queued_tasks: 100_000,
        }
    } else {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
        Sizes {
            spawned_tasks: 50,
            simulated_tasks: 500,
            queued_tasks: 1_000,
        }
    };
    let rt = common::runtime();
    rt.block_on(async {
        for workers in [4, 16] {
            // With TLS (the default) and without, side by side.
            let tls = throughput(workers, sizes.spawned_tasks, Mode::Tls).await;
            let plain = throughput(workers, sizes.spawned_tasks, Mode::Plain).await;
            let journal = throughput(workers, sizes.spawned_tasks, Mode::Journal).await;
            println!(
                "  {workers} workers: TLS/plain throughput = {:.2}; journal/no journal = {:.2}",
                tls / plain,
                journal / tls
            );
        }
        let (wall, cpu, _) = scheduler_cost(sizes.simulated_tasks, Mode::Tls).await;
        let (jwall, jcpu, _) = scheduler_cost(sizes.simulated_tasks, Mode::Journal).await;
        let (cwall, ccpu, _) = scheduler_cost(sizes.simulated_tasks, Mode::Compacting).await;
        println!(
            "  journal/no journal: wall per task {:.2}, scheduler CPU per task {:.2}",
            jwall / wall,
            jcpu / cpu
        );
        println!(
            "  compacting/journal: wall per task {:.2}, scheduler CPU per task {:.2}",
            cwall / jwall,
            ccpu / jcpu
        );
        accounting_cost(sizes.simulated_tasks, if measuring { 3 } else { 1 }).await;
        queued_memory(sizes.queued_tasks).await;
    });
}

/// The scheduler's cost per task with accounting on and off, `rounds`
/// times each, alternating (the machine's drift falls on both): the
/// medians' ratios, and the resident memory after the tasks.
async fn accounting_cost(tasks: usize, rounds: usize) {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        on.push(scheduler_cost(tasks, Mode::Tls).await);
        off.push(scheduler_cost(tasks, Mode::NoAccounting).await);
    }
    let median = |runs: &[(f64, f64, u64)], pick: fn(&(f64, f64, u64)) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on_cpu, off_cpu) = (median(&on, |r| r.1), median(&off, |r| r.1));
    let (on_rss, off_rss) = (median(&on, |r| r.2 as f64), median(&off, |r| r.2 as f64));
    println!(
        "accounting on/off, {tasks} tasks, median of {rounds} alternating: scheduler CPU per task \
         {on_cpu:.4} / {off_cpu:.4} ms = {:.2}; wall per task {:.2}; resident after the tasks \
         {:.1} / {:.1} MiB = {:.3}",
        on_cpu / off_cpu,
        median(&on, |r| r.0) / median(&off, |r| r.0),
        on_rss / 1024.0,
        off_rss / 1024.0,
        on_rss / off_rss
    );
}

/// How a measured scheduler runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// TLS, no journal: the default.
    Tls,
    /// Plain HTTP, for what TLS costs.
    Plain,
    /// TLS with `--journal`.
    Journal,
    /// TLS with `--journal`, compacted from 1 MiB on.
    Compacting,
    /// TLS, keeping no accounting (`--no-accounting`).
    NoAccounting,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Tls => "TLS",
            Mode::Plain => "plain HTTP",
            Mode::Journal => "TLS, journal",
            Mode::Compacting => "TLS, journal compacted from 1 MiB",
            Mode::NoAccounting => "TLS, accounting off",
        }
    }
}

/// Starts `drover scheduler` on loopback; returns it and a client.
async fn scheduler(dir: &Path, mode: Mode) -> (KillOnDrop, SchedulerClient, std::path::PathBuf) {
    let journal = dir.join("journal");
    let args: Vec<&str> = match mode {
        Mode::Tls => vec![],
        Mode::Plain => vec!["--insecure-plain-http"],
        Mode::NoAccounting => vec!["--no-accounting"],
        Mode::Journal => vec!["--journal", journal.to_str().unwrap()],
        Mode::Compacting => vec![
            "--journal",
            journal.to_str().unwrap(),
            "--journal-compact-after",
            "1MiB",
        ],
    };
    // The snapshots' log lines say how long each held the book.
    let log = dir.join("scheduler.log");
    let log = (mode == Mode::Compacting).then_some((SNAPSHOT_LOG, log.as_path()));
    let (child, file) = common::process::scheduler_process_logging(dir, &args, log).await;
    let client = SchedulerClient::from_file(&SchedulerFile::read(&file).unwrap());
    (child, client, file)
}

const SNAPSHOT_LOG: &str = "warn,drover::scheduler::snapshot=info";

/// Each snapshot's tasks and the milliseconds it held the book, from the
/// log in `dir`.
fn snapshot_pauses(dir: &Path) -> Vec<(u64, u64)> {
    let log = std::fs::read_to_string(dir.join("scheduler.log")).unwrap_or_default();
    let field = |line: &str, name: &str| -> Option<u64> {
        let text = line.split(&format!("{name}=")).nth(1)?;
        text.split_whitespace().next()?.parse().ok()
    };
    log.lines()
        .filter(|l| l.contains("journal snapshot taken"))
        .filter_map(|l| Some((field(l, "tasks")?, field(l, "took_ms")?)))
        .collect()
}

fn trivial(n: usize) -> Vec<TaskSpec> {
    (0..n)
        .map(|_| TaskSpec {
            argv: vec!["true".into()],
            cores: 1,
            ..Default::default()
        })
        .collect()
}

async fn throughput(workers: usize, tasks: usize, mode: Mode) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (sched, client, file) = scheduler(dir.path(), mode).await;
    let mut procs = vec![sched];
    for _ in 0..workers {
        procs.push(KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_drover"))
                .args(["worker", "--cores", "1", "--scheduler-file"])
                .arg(&file)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    while client.workers().await.unwrap().len() < workers {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let ids = client.submit(&trivial(tasks)).await.unwrap();
    let done = client
        .wait_tasks(None, Duration::from_millis(20))
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(done.len(), ids.len());
    assert!(done
        .iter()
        .all(|t| t.output.as_ref().and_then(|o| o.exit_code) == Some(0)));
    let rate = tasks as f64 / secs;
    println!(
        "throughput, {tasks} `true` tasks through {workers} worker processes (1 core each), {}: {rate:.0} tasks/s ({secs:.2} s)",
        mode.label()
    );
    rate
}

fn cpu_ticks(pid: u32) -> u64 {
    let (user, system) = common::procfs::cpu_ticks(pid);
    user + system
}

/// Simulated workers: register, and report every task they are given as
/// done at once, until every task is done.
/// Returns the wall and scheduler CPU milliseconds per task, and the
/// scheduler's resident KiB after them.
async fn scheduler_cost(tasks: usize, mode: Mode) -> (f64, f64, u64) {
    const WORKERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let (mut sched, client, file) = scheduler(dir.path(), mode).await;
    let pid = sched.0.id();
    let mut sims = tokio::task::JoinSet::new();
    for i in 0..WORKERS {
        let client = client.clone();
        sims.spawn(async move {
            let mut req = common::simulated::worker(i);
            req.cores = 64;
            req.allocation_end = None;
            let reg = client.register(&req).await.unwrap();
            loop {
                match client.poll(reg.worker_id, Duration::from_secs(1)).await {
                    Ok(Instruction::Run { tasks }) => {
                        let done = common::simulated::succeeded(&tasks);
                        client.done(reg.worker_id, &done).await.unwrap();
                    }
                    Ok(Instruction::Continue { next_poll_ms }) => {
                        tokio::time::sleep(Duration::from_millis(next_poll_ms)).await
                    }
                    _ => return,
                }
            }
        });
    }
    while client.workers().await.unwrap().len() < WORKERS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let specs = trivial(tasks);
    let ticks0 = cpu_ticks(pid);
    let start = Instant::now();
    for chunk in specs.chunks(10_000) {
        client.submit(chunk).await.unwrap();
    }
    loop {
        let c = client.tasks(None, true).await.unwrap().counts;
        if c.succeeded == tasks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - ticks0) as f64 / 100.0;
    let rss = rss_kib(pid);
    sims.abort_all();
    let per_task_ms = wall * 1000.0 / tasks as f64;
    let cpu_per_task_ms = cpu * 1000.0 / tasks as f64;
    println!(
        "scheduler cost per task, {tasks} tasks, {WORKERS} simulated workers completing at once, {}: \
         {per_task_ms:.4} ms wall per task ({:.0} tasks/s), {cpu_per_task_ms:.4} ms of scheduler CPU per task \
         (target at most 0.1 ms; wall/target = {:.2})",
        mode.label(),
        tasks as f64 / wall,
        per_task_ms / 0.1
    );
    if matches!(mode, Mode::Journal | Mode::Compacting) {
        restart(dir.path(), &mut sched, &file, tasks, mode).await;
    }
    (per_task_ms, cpu_per_task_ms, rss)
}

/// Kills a journaled scheduler holding `tasks` finished tasks, starts it
/// again on its journal, and times it until it answers with them all.
async fn restart(dir: &Path, sched: &mut KillOnDrop, file: &Path, tasks: usize, mode: Mode) {
    let bytes = std::fs::metadata(dir.join("journal")).unwrap().len();
    sched.0.kill().unwrap();
    sched.0.wait().unwrap();
    if mode == Mode::Compacting {
        let pauses = snapshot_pauses(dir);
        let ops = drover::journal::Journal::read(&dir.join("journal")).unwrap();
        let snapshot = matches!(ops.get(1), Some(drover::journal::Op::Snapshot(_)));
        let after = ops
            .iter()
            .skip(1)
            .filter(|o| {
                !matches!(
                    o,
                    drover::journal::Op::Snapshot(_) | drover::journal::Op::SnapshotTasks { .. }
                )
            })
            .count();
        println!(
            "compaction: {} snapshots while it ran, (tasks, ms the book was held) {:?} (largest {} ms); \
             at the kill the journal was {} with {after} records after it",
            pauses.len(),
            pauses,
            pauses.iter().map(|p| p.1).max().unwrap_or(0),
            if snapshot { "a snapshot" } else { "not compacted" },
        );
    }
    std::fs::remove_file(file).unwrap();
    let start = Instant::now();
    let (_again, client, _) = scheduler(dir, mode).await;
    let counts = client.tasks(None, true).await.unwrap().counts;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(counts.succeeded, tasks, "every result is back");
    println!(
        "{}: {bytes} bytes for {tasks} finished tasks ({:.0} bytes per task); \
         restart with them until they are served: {secs:.2} s (target under 2 s; measured/target = {:.2})",
        mode.label(),
        bytes as f64 / tasks as f64,
        secs / 2.0
    );
}

async fn queued_memory(tasks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (sched, client, _) = scheduler(dir.path(), Mode::Tls).await;
    let pid = sched.0.id();
    let _procs = sched;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = rss_kib(pid);
    let specs: Vec<TaskSpec> = (0..tasks)
        .map(|i| TaskSpec {
            argv: vec!["sh".into(), "-c".into(), format!("echo {i}")],
            cores: 1,
            ..Default::default()
        })
        .collect();
    for chunk in specs.chunks(10_000) {
        client.submit(chunk).await.unwrap();
    }
    let c = client.tasks(None, true).await.unwrap().counts;
    assert_eq!(c.ready, tasks);
    let loaded = rss_kib(pid);
    let mib = loaded as f64 / 1024.0;
    println!(
        "scheduler memory with {tasks} queued tasks: {mib:.1} MiB resident ({:.1} MiB idle; {:.2} KiB per task) \
         (target under 200 MiB; measured/target = {:.3})",
        idle as f64 / 1024.0,
        (loaded - idle) as f64 / tasks as f64,
        mib / 200.0
    );
}
