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

/// A test's directory, which the nodes see, and the pool's files in it.
struct Paths {
    logs: tempfile::TempDir,
    journal: std::path::PathBuf,
    file: std::path::PathBuf,
    out: std::path::PathBuf,
    prefix: String,
}

/// The local Slurm to this test alone, and its paths; `None` when there is
/// no Slurm and the test may skip (never under CI=true).
fn setup(test: &str, prefix: &str) -> Option<(impl Drop, Paths)> {
    local_slurm(test)?;
    let serial = exclusive_blocking();
    let logs = log_dir();
    let paths = Paths {
        journal: logs.path().join("pool.journal"),
        file: logs.path().join("pool.json"),
        out: logs.path().join("lines"),
        prefix: unique(prefix),
        logs,
    };
    Some((serial, paths))
}

/// `drover close`, then waits until no job named in `names` is queued.
fn close_and_wait(file: &Path, names: &[&str]) {
    let closed = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["close", "--scheduler-file"])
        .arg(file)
        .output()
        .unwrap();
    assert!(closed.status.success(), "{closed:?}");
    wait_until("no job left", Duration::from_secs(30), || {
        names.iter().all(|n| queued(n).is_empty())
    });
}

#[test]
fn a_pool_killed_mid_run_continues_from_its_journal_with_its_jobs_and_each_task_once() {
    const TASKS: u64 = 10_000;
    let Some((_serial, p)) = setup("a_pool_killed_mid_run_continues", "drover-journal") else {
        return;
    };
    let Paths {
        logs,
        journal,
        file,
        out,
        prefix,
    } = p;
    // Compacted as it runs (10,000 tasks make about 2 MB of journal): the
    // pool comes back from a snapshot and the records after it.
    let compacting = |mut c: Command| {
        c.env("DROVER_JOURNAL_COMPACT_AFTER", "256KiB");
        c
    };
    let up = compacting(cluster_up(logs.path(), &prefix, &journal, "30s"));
    let (mut first, name) = start(up);
    let jobs = queued(&name);
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let tasks = common::appending_tasks(TASKS, &out);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids = rt.block_on(client(&file).submit(&tasks)).unwrap();
    // The event: a few hundred tasks have run, four are running, and the
    // journal has been compacted.
    wait_until("tasks run", Duration::from_secs(120), || {
        common::appended(&out).len() >= 300 && common::compacted(&journal)
    });
    first.0.kill().unwrap(); // SIGKILL: no chance to close or to save
    first.0.wait().unwrap();
    let at_kill = common::appended(&out).len();

    let restarted = Instant::now();
    let up = compacting(cluster_up(logs.path(), &prefix, &journal, "30s"));
    let (_second, again) = start(up);
    eprintln!("started again and ready in {:?}", restarted.elapsed());
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

    close_and_wait(&file, &[&name]);
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
    let Some((_serial, p)) = setup("a_journal_pools_jobs_outlive", "drover-grace") else {
        return;
    };
    let (mut driver, name) = start(cluster_up(p.logs.path(), &p.prefix, &p.journal, "4s"));
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

/// Cancels every job named so when dropped: a scheduler job's pool
/// outlives its driver by design, so a failing test must end it.
struct CancelNamedOnDrop(String);

impl Drop for CancelNamedOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .args(["--name", &self.0])
            .env("SLURM_CONF", slurm_conf())
            .output();
    }
}

/// The state of job `id` as `squeue` lists it (ended jobs stay listed for
/// MinJobAge), or "" once gone.
fn state_of(id: &str) -> String {
    slurm_cmd("squeue", &["-h", "-t", "all", "-j", id, "-o", "%T"])
        .trim()
        .to_string()
}

#[test]
fn a_scheduler_job_hands_over_before_its_time_limit_and_the_workers_stay() {
    const TASKS: u64 = 300;
    let Some((_serial, p)) = setup("a_scheduler_job_hands_over", "drover-schedjob") else {
        return;
    };
    let (file, prefix) = (&p.file, &p.prefix);
    // Each scheduler job may run 2 minutes and hands over a minute before.
    let up = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "cluster",
            "up",
            "--scheduler-job",
            "--scheduler-job-walltime",
            "2",
        ])
        .args(["--workers", "2", "--cores", "1", "--interface", "ib0"])
        .args(["--job-name", prefix, "--journal"])
        .arg(&p.journal)
        .arg("--scheduler-file")
        .arg(file)
        .arg("--log-directory")
        .arg(p.logs.path())
        .env("SLURM_CONF", slurm_conf())
        .env("DROVER_USER_CONFIG", "/dev/null")
        .env("DROVER_POLL_INTERVAL", "0.3")
        .env("DROVER_HEARTBEAT_INTERVAL", "1s")
        .output()
        .unwrap();
    let _scheduler_jobs = CancelNamedOnDrop(format!("{prefix}-scheduler"));
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let first = said
        .lines()
        .find_map(|l| l.strip_prefix("scheduler job "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the scheduler job's id")
        .to_string();
    assert_eq!(state_of(&first), "RUNNING");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(client(file).cluster()).unwrap();
    let name = status.job_name.clone();
    let _worker_jobs = CancelNamedOnDrop(name.clone());
    let workers = queued(&name);
    assert_eq!(workers.len(), 2, "{status:?}");
    let tasks: Vec<_> = common::appending_tasks(TASKS, &p.out)
        .into_iter()
        .map(|mut t| {
            t.argv[2] = format!("sleep 0.5; {}", t.argv[2]);
            t
        })
        .collect();
    let driver = SchedulerClient::from_path(file).unwrap();
    let ids = rt.block_on(driver.submit(&tasks)).unwrap();
    // The event: the first scheduler job ended by itself, its successor runs.
    wait_until(
        "the first scheduler job handed over",
        Duration::from_secs(150),
        || state_of(&first) == "COMPLETED",
    );
    let successors = queued(&format!("{prefix}-scheduler"));
    assert_eq!(successors.len(), 1, "{successors:?}");
    assert_ne!(successors[0], first);
    // Drivers find the successor through the scheduler file, as the agents do.
    wait_until("the successor answers", Duration::from_secs(60), || {
        rt.block_on(client(file).workers()).is_ok()
    });
    // The driver's client from before the handover follows the file.
    let done = rt
        .block_on(driver.wait_tasks(Some(&ids), Duration::from_millis(200)))
        .unwrap();
    let ran = common::assert_each_task_ran_once(&done, &p.out, TASKS);
    eprintln!(
        "scheduler job {first} handed over to {}; {ran} lines for {TASKS} tasks",
        successors[0]
    );
    assert_eq!(queued(&name), workers, "the same worker jobs throughout");
    close_and_wait(file, &[&name, &format!("{prefix}-scheduler")]);
}
