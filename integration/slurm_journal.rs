//! A pool with a journal on the real local Slurm: `drover cluster up
//! --journal` killed with SIGKILL mid-run and started again continues the
//! same pool (the same jobs, workers and tasks; every task once), a pool
//! whose driver does not come back is cancelled after its grace, and a
//! closed pool's journal is not continued by mistake.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    bridge, exclusive_blocking, local_slurm, log_dir, slurm_cmd, slurm_conf, unique, KillOnDrop,
};
use drover::client::SchedulerClient;
use drover::protocol::SchedulerFile;

/// `drover cluster up` with a journal: 4 one-core workers.
fn cluster_up(logs: &Path, name: &str, journal: &Path, grace: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(["cluster", "up", "--workers", "4", "--cores", "1"])
        .args(["--interface", "ib0", "--scheduler-interface", &bridge()])
        .args(["--job-name", name, "--reattach-grace", grace])
        .arg("--journal")
        .arg(journal)
        .arg("--scheduler-file")
        .arg(logs.join("pool.json"))
        .arg("--log-directory")
        .arg(logs)
        .env("SLURM_CONF", slurm_conf())
        .env("DROVER_USER_CONFIG", "/dev/null")
        .env("DROVER_POLL_INTERVAL", "0.3")
        .env("DROVER_HEARTBEAT_INTERVAL", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

/// Starts the pool and waits for its `ready:` line; returns the process
/// and the Slurm job name it printed. Its output is read to the end.
fn start(mut cmd: Command) -> (KillOnDrop, String) {
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut name = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("jobs named ").nth(1) {
                name = rest.trim_end_matches(')').to_string();
            }
            if line.starts_with("ready:") {
                let _ = tx.send(name.clone());
            }
        }
    });
    let name = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the pool says it is ready");
    (child, name)
}

/// The pool's jobs in the queue, by job id, sorted.
fn queued(name: &str) -> Vec<String> {
    let mut ids: Vec<String> = slurm_cmd("squeue", &["-h", "-r", "-n", name, "-o", "%i"])
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

fn client(file: &Path) -> SchedulerClient {
    SchedulerClient::from_file(&SchedulerFile::read(file).unwrap())
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pool_killed_mid_run_continues_from_its_journal_with_its_jobs_and_each_task_once() {
    const TASKS: u64 = 10_000;
    if local_slurm("a_pool_killed_mid_run_continues").is_none() {
        return;
    }
    let _serial = exclusive_blocking();
    let logs = log_dir();
    let journal = logs.path().join("pool.journal");
    let out = logs.path().join("lines");
    let file = logs.path().join("pool.json");
    let prefix = unique("drover-journal");
    let (mut first, name) = start(cluster_up(logs.path(), &prefix, &journal, "30s"));
    let jobs = queued(&name);
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let tasks = common::appending_tasks(TASKS, &out);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids = rt.block_on(client(&file).submit(&tasks)).unwrap();
    // The event: a few hundred tasks have run, four are running.
    wait_until("tasks run", Duration::from_secs(120), || {
        common::appended(&out).len() >= 300
    });
    first.0.kill().unwrap(); // SIGKILL: no chance to close or to save
    first.0.wait().unwrap();
    let at_kill = common::appended(&out).len();

    let (_second, again) = start(cluster_up(logs.path(), &prefix, &journal, "30s"));
    assert_eq!(again, name, "the same pool, by the same job name");
    let done = rt
        .block_on(client(&file).wait_tasks(Some(&ids), Duration::from_millis(200)))
        .unwrap();
    let ran = common::assert_each_task_ran_once(&done, &out, TASKS);
    eprintln!("killed after {at_kill} tasks had run; {ran} lines for {TASKS} tasks");
    // The same four jobs did it all: none resubmitted, none orphaned, and
    // the old driver's watcher left them to the pool that came back.
    assert_eq!(queued(&name), jobs, "the same jobs");
    let status = rt.block_on(client(&file).cluster()).unwrap();
    assert_eq!(status.submitted, 0, "nothing submitted again: {status:?}");
    assert_eq!(status.registered, 4, "{status:?}");

    let closed = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["close", "--scheduler-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(closed.status.success(), "{closed:?}");
    wait_until("no job left", Duration::from_secs(30), || {
        queued(&name).is_empty()
    });
    // A closed pool's journal is not continued by mistake.
    let refused = cluster_up(logs.path(), &prefix, &journal, "30s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("a pool that was closed"), "{said}");
    assert!(queued(&name).is_empty());
}

#[test]
fn a_journal_pools_jobs_outlive_a_dead_driver_for_the_grace_and_no_longer() {
    if local_slurm("a_journal_pools_jobs_outlive").is_none() {
        return;
    }
    let _serial = exclusive_blocking();
    let logs = log_dir();
    let journal = logs.path().join("pool.journal");
    let prefix = unique("drover-grace");
    let (mut driver, name) = start(cluster_up(logs.path(), &prefix, &journal, "4s"));
    assert_eq!(queued(&name).len(), 4);
    driver.0.kill().unwrap();
    driver.0.wait().unwrap();
    let killed = Instant::now();
    // Kept while the grace runs, cancelled once it is over (no pool came
    // back): the moment they are seen gone is at least the grace.
    wait_until(
        "the jobs cancelled after the grace",
        Duration::from_secs(20),
        || queued(&name).is_empty(),
    );
    let gone_after = killed.elapsed();
    eprintln!("jobs cancelled {gone_after:?} after the driver died (grace 4 s)");
    assert!(gone_after >= Duration::from_secs(4), "{gone_after:?}");
}
