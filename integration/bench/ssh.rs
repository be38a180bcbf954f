//! A driver outside the cluster, measured (`cargo bench --bench ssh`;
//! issue 33), on the local Slurm's login node and laptop
//! (`slurm/local-cluster laptop`), side by side in one run:
//!
//! 1. a pool of 8 workers up (registered) from the laptop over ssh
//!    (`drover cluster up --ssh login`, until it prints `ready:`) against
//!    the same pool started on the login node itself (`drover cluster up
//!    --detach`, timed there), alternating, 3 rounds each;
//! 2. a task's round trip (submit `true`, wait until it is over) through
//!    the port forwarded to the laptop against a direct connection to the
//!    same pool from the cluster's network, 100 each;
//! 3. ssh logins the login node accepted per pool (its sshd log).
//!
//! Under `cargo test` it is a smoke run (2 workers, 1 round, 5 tasks): its
//! figures are no measurement.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover::client::SchedulerClient;
use drover::tasks::TaskSpec;

const DROVER: &str = env!("CARGO_BIN_EXE_drover");
const LOGIN_DIR: &str = "/var/lib/drover-slurm/login";

fn main() {
    // Inside the laptop: only the round trips, printed for the parent.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--round-trips") {
        let (file, n) = (&args[i + 1], args[i + 2].parse().unwrap());
        let ms = common::runtime().block_on(round_trips(Path::new(file), n));
        println!("round-trip-ms {}", common::median(ms));
        return;
    }
    let measuring = args.iter().any(|a| a == "--bench");
    let (workers, rounds, tasks) = match measuring {
        true => (8, 3, 100),
        false => (2, 1, 5),
    };
    if !measuring {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
    }
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| common::CONF.into());
    common::drained(&conf);
    let logs = tempfile::Builder::new()
        .prefix("drover-bench-ssh")
        .tempdir()
        .unwrap();
    let logs = logs.path().display().to_string();
    let (mut over_ssh, mut on_login, mut logins) = (Vec::new(), Vec::new(), Vec::new());
    let mut trips = None;
    for round in 0..rounds {
        let before = laptop_logins();
        let (pool, up) = up_from_laptop(workers, &logs, round);
        over_ssh.push(up);
        logins.push(laptop_logins() - before);
        if trips.is_none() {
            trips = Some(compare_round_trips(&pool, round, tasks));
        }
        close(pool, &conf);
        on_login.push(up_on_login(workers, &logs, round, &conf));
    }
    let (ssh, login) = (common::median(over_ssh), common::median(on_login));
    println!(
        "ssh: {workers} workers registered: {ssh:.2} s from the laptop over ssh against {login:.2} s on the login node ({:.2}x; medians of {rounds})",
        ssh / login
    );
    let (forwarded, direct) = trips.unwrap();
    println!(
        "ssh: a task's round trip: {forwarded:.1} ms through the forwarded port against {direct:.1} ms direct ({:.2}x; medians of {tasks})",
        forwarded / direct
    );
    println!("ssh: ssh logins per pool: {logins:?}");
}

/// The pool's settings for the host.
fn pool_flags(workers: usize, logs: &str, name: &str) -> Vec<String> {
    let w = workers.to_string();
    [
        "--workers",
        &w,
        "--cores",
        "1",
        "--memory",
        "500M",
        "--walltime",
        "10m",
        "--interface",
        "ib0",
        "--scheduler-interface",
        "ib0",
        "--log-directory",
        logs,
        "--job-name",
        name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn laptop(args: &[String]) -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
    let mut c = Command::new(script);
    c.args(["laptop", "--"])
        .args(args)
        .env("DROVER_USER_CONFIG", "/dev/null");
    c
}

fn ssh_login(line: &str) -> String {
    let out = Command::new("ssh")
        .args(["-F", &format!("{LOGIN_DIR}/ssh_config"), "login", line])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn laptop_logins() -> usize {
    std::fs::read_to_string("/var/lib/drover-slurm/log/sshd-login.log")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Accepted publickey") && l.contains("from 10.78.0.2"))
        .count()
}

/// A pool from the laptop: the running `cluster up --ssh` and its local
/// scheduler file, and seconds until it was ready.
struct LaptopPool {
    child: Child,
    file: String,
    name: String,
}

fn up_from_laptop(workers: usize, logs: &str, round: usize) -> (LaptopPool, f64) {
    let name = format!("bench-ssh-{}-{round}", std::process::id());
    let mut args: Vec<String> = [DROVER, "cluster", "up", "--ssh", "login", "--name", &name]
        .map(String::from)
        .to_vec();
    args.extend(["--remote-drover".to_string(), DROVER.into()]);
    args.extend(pool_flags(workers, logs, &name));
    let start = Instant::now();
    let mut child = laptop(&args)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut file = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(f) = line.strip_prefix("export DROVER_SCHEDULER_FILE=") {
            file = Some(f.to_string());
        }
        if line.starts_with("ready:") {
            break;
        }
    }
    let took = start.elapsed().as_secs_f64();
    std::thread::spawn(move || lines.for_each(drop));
    let file = file.expect("cluster up --ssh printed its scheduler file");
    (LaptopPool { child, file, name }, took)
}

fn close(mut pool: LaptopPool, conf: &str) {
    let pgid = nix::unistd::Pid::from_raw(pool.child.id() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = pool.child.wait().unwrap();
    assert!(status.success(), "cluster up --ssh closed: {status}");
    common::drained(conf);
}

/// The same pool started on the login node by a driver there.
fn up_on_login(workers: usize, logs: &str, round: usize, conf: &str) -> f64 {
    let name = format!("bench-login-{}-{round}", std::process::id());
    let file = format!("{logs}/{name}.json");
    let mut argv = vec![
        DROVER.to_string(),
        "cluster".into(),
        "up".into(),
        "--detach".into(),
    ];
    argv.extend(pool_flags(workers, logs, &name));
    argv.extend(["--scheduler-file".to_string(), file.clone()]);
    let line = format!(
        "s=$(date +%s%N); DROVER_USER_CONFIG=/dev/null {} >/dev/null && e=$(date +%s%N) && echo $((e - s))",
        shlex::try_join(argv.iter().map(String::as_str)).unwrap()
    );
    let ns: f64 = ssh_login(&line).trim().parse().unwrap();
    ssh_login(&format!(
        "{DROVER} close --scheduler-file {file} >/dev/null"
    ));
    common::drained(conf);
    ns / 1e9
}

/// Median round trips through the laptop's forwarded port and directly,
/// on the same pool.
fn compare_round_trips(pool: &LaptopPool, _round: usize, n: usize) -> (f64, f64) {
    let me = std::env::current_exe().unwrap().display().to_string();
    let out = laptop(&[me, "--round-trips".into(), pool.file.clone(), n.to_string()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let forwarded: f64 = said
        .lines()
        .find_map(|l| l.strip_prefix("round-trip-ms "))
        .unwrap_or_else(|| {
            panic!(
                "no round trips from the laptop: {said} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .parse()
        .unwrap();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let remote = format!("{home}/.drover/ssh/{}.json", pool.name);
    let direct = common::median(common::runtime().block_on(round_trips(Path::new(&remote), n)));
    (forwarded, direct)
}

async fn round_trips(file: &Path, n: usize) -> Vec<f64> {
    let client = SchedulerClient::from_path(file).unwrap();
    let task = TaskSpec {
        argv: vec!["true".into()],
        ..Default::default()
    };
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let ids = client.submit(std::slice::from_ref(&task)).await.unwrap();
        client
            .wait_tasks(Some(&ids), Duration::from_millis(5))
            .await
            .unwrap();
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms
}
