//! Helpers shared by the integration tests: finding the local Slurm (never
//! skipping under CI=true), running drover and reading `scontrol`.

#![allow(dead_code)]

pub mod browser;
pub mod nodes;
pub mod process;
pub mod python;
pub mod simulated;

#[allow(unused_imports)]
pub use nodes::{urgent_job, urgent_job_on_every_node, ReviveNode};
#[allow(unused_imports)] // not every test crate uses both
pub use process::{run_ok, KillOnDrop};

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use drover::scheduler::{Bind, Scheduler, SchedulerConfig};
use drover::slurm::{JobId, Slurm, SlurmCli};

/// The Slurm the tests drive: its commands, or slurmrestd when
/// `DROVER_SLURM_API=rest` (with `SLURMRESTD_URL` and `SLURM_JWT`, as
/// `slurm/local-cluster env` prints them). `drover` processes the tests
/// start read the same variables.
pub type TestSlurm = std::sync::Arc<dyn Slurm>;

/// Whether this run drives slurmrestd.
pub fn over_rest() -> bool {
    std::env::var("DROVER_SLURM_API").is_ok_and(|a| a.eq_ignore_ascii_case("rest"))
}

/// `SLURMRESTD_URL` as a job on a node reaches it: the local socket
/// slurmrestd also listens on (`slurm/lib/daemons.sh`), since the host's
/// loopback is not the node's.
pub fn rest_url_for_jobs() -> String {
    let state = slurm_conf()
        .parent()
        .expect("slurm.conf is in the state directory")
        .to_path_buf();
    format!("unix:{}", state.join("rest/slurmrestd.sock").display())
}

/// Asserts that a pool's status says it reached Slurm the way this run
/// drives it (so a REST run cannot pass on the commands unnoticed).
pub fn assert_backend(status: &drover::protocol::ClusterStatus) {
    let expected = match over_rest() {
        true => format!("slurmrestd {} at ", rest_version()),
        false => "Slurm's commands".to_string(),
    };
    assert!(
        status.slurm_api.starts_with(&expected),
        "the pool reached Slurm as {:?}, not {expected:?}",
        status.slurm_api
    );
}

/// Where `slurm/local-cluster` writes its config.
pub const LOCAL_SLURM_CONF: &str = "/var/lib/drover-slurm/slurm.conf";

/// The `slurm.conf` of the Slurm the tests use: `$SLURM_CONF`, else the
/// local cluster's.
pub fn slurm_conf() -> PathBuf {
    std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(LOCAL_SLURM_CONF))
}

/// The local Slurm, or `None` (with a note) when it is not running. Under
/// `CI=true` a missing Slurm fails the test instead of skipping it. Over
/// slurmrestd when `DROVER_SLURM_API=rest`.
pub fn local_slurm(test: &str) -> Option<TestSlurm> {
    let cli = local_slurm_cli(test)?;
    if !over_rest() {
        return Some(std::sync::Arc::new(cli));
    }
    let pool = drover::config::pool_from_env().expect("the DROVER_* settings read");
    match drover::slurm::SlurmRest::for_pool(&pool) {
        Ok(rest) => Some(std::sync::Arc::new(rest)),
        Err(e) => panic!("{test}: DROVER_SLURM_API=rest, but: {e} (`eval \"$(slurm/local-cluster env --rest)\"` sets SLURMRESTD_URL and SLURM_JWT)"),
    }
}

/// The local Slurm through its commands, whatever backend the run drives:
/// for tests about the commands themselves.
pub fn local_slurm_cli(test: &str) -> Option<SlurmCli> {
    let conf = slurm_conf();
    let reachable = Command::new("timeout")
        .args(["10", "sinfo", "-h"])
        .env("SLURM_CONF", &conf)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if reachable {
        return Some(SlurmCli::new().with_conf(conf));
    }
    let why = format!(
        "{test}: no Slurm answers with SLURM_CONF={} (start it with `slurm/local-cluster up`)",
        conf.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; under CI=true integration tests never skip");
    }
    eprintln!("SKIPPED {why}");
    None
}

/// Runs the drover binary with `args` against the test Slurm.
pub fn drover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .env("DROVER_USER_CONFIG", "/dev/null")
        .output()
        .expect("the drover binary runs")
}

/// A Slurm command's stdout; panics with its stderr on failure.
pub fn slurm_cmd(program: &str, args: &[&str]) -> String {
    let out = run_ok(
        Command::new(program)
            .args(args)
            .env("SLURM_CONF", slurm_conf()),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `slurm/local-cluster ARGS` (a node or controller failure, or its
/// end), within 90 s; panics with its stderr on failure.
pub fn local_cluster(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
    run_ok(Command::new("timeout").arg("90").arg(script).args(args));
}

/// `scontrol show job ID` as a map of its `Key=Value` fields. For the id
/// of an array's first task, Slurm lists every task of the array: only the
/// line of the job whose own `JobId` is `ID` counts.
pub fn show_job(id: JobId) -> HashMap<String, String> {
    let text = slurm_cmd("scontrol", &["show", "job", "-o", &id.to_string()]);
    let fields = |line: &str| -> HashMap<String, String> {
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    text.lines()
        .map(fields)
        .find(|job| job.get("JobId") == Some(&id.to_string()))
        .unwrap_or_else(|| fields(text.lines().next().unwrap_or_default()))
}

/// Waits until none of `ids` is still active in Slurm, then returns each
/// one's final state as `scontrol` reports it; panics after `limit`.
pub async fn final_states(
    ids: impl IntoIterator<Item = u64>,
    limit: Duration,
) -> Vec<(u64, String)> {
    let ids: Vec<u64> = ids.into_iter().collect();
    let start = Instant::now();
    loop {
        let states: Vec<(u64, String)> = ids
            .iter()
            .map(|&id| {
                let job = show_job(JobId::new(id));
                (id, job.get("JobState").cloned().unwrap_or_default())
            })
            .collect();
        if states.iter().all(|(_, s)| {
            !matches!(
                s.as_str(),
                "PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING"
            )
        }) {
            return states;
        }
        assert!(
            start.elapsed() < limit,
            "jobs still active after {limit:?}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until job `id` reaches `state`, panicking after `limit`, or at
/// once when the job ended in another state (it cannot change again).
pub async fn wait_for_state(id: JobId, state: &str, limit: Duration) -> HashMap<String, String> {
    let start = Instant::now();
    loop {
        let job = show_job(id);
        let now = job.get("JobState").map(String::as_str);
        if now == Some(state) {
            return job;
        }
        assert!(
            now.is_none_or(|s| drover::slurm::JobState::from(s).is_active()),
            "job {id} ended {now:?}, not {state}: {job:?}"
        );
        assert!(
            start.elapsed() < limit,
            "job {id} did not reach {state} within {limit:?}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The release of the local Slurm the suites run on (`22.05`, `24.11`,
/// `26.05`), as `slurm/local-cluster env` exports it.
pub fn slurm_release() -> String {
    std::env::var("DROVER_SLURM_RELEASE").unwrap_or_else(|_| "22.05".into())
}

/// The version of slurmrestd's API drover speaks with the local Slurm's
/// release: the newest both know.
pub fn rest_version() -> &'static str {
    match slurm_release().as_str() {
        "22.05" => "v0.0.38",
        _ => "v0.0.42",
    }
}

/// The local Slurm's partitions as `drover doctor` lists them: the
/// default named as such, but over the REST API's data_parser versions,
/// which do not say which it is.
pub fn partition_list() -> &'static str {
    match over_rest() && rest_version() != "v0.0.38" {
        true => "batch, small, big, scavenger, urgent",
        false => "batch (default), small, big, scavenger, urgent",
    }
}

/// Whether the local Slurm keeps accounts (`slurm/local-cluster up` has
/// it on, but for `--no-accounting` and the releases whose slurmdbd cannot
/// run here): read from Slurm's own configuration, as drover reads it.
pub fn accounting_on() -> bool {
    let config = slurm_cmd("scontrol", &["show", "config"]);
    drover::slurm::SiteInfo::parse(&config).accounting_on() == Some(true)
}

/// The driver-side interface of the local cluster's bridge:
/// `DROVER_TEST_INTERFACE`, else the cluster's own (`slurm/local-cluster
/// env` prints `DROVER_LOCAL_BRIDGE`), else 22.05's.
pub fn bridge() -> String {
    std::env::var("DROVER_TEST_INTERFACE")
        .or_else(|_| std::env::var("DROVER_LOCAL_BRIDGE"))
        .unwrap_or_else(|_| "drvbr0".into())
}

/// The address of this side of the cluster's bridge (where a scheduler on
/// it listens): `10.77.0.1` for 22.05's cluster, each release's in its own
/// subnet.
pub fn bridge_address() -> std::net::Ipv4Addr {
    drover::net::interface_ipv4(&bridge())
        .unwrap_or_else(|e| panic!("the cluster's bridge {} has no address: {e}", bridge()))
}

/// Node `i`'s address on its ib0: slurm/local-cluster gives node i host
/// 10 + i in the bridge's subnet.
pub fn node_address(i: u8) -> String {
    let [a, b, c, _] = bridge_address().octets();
    format!("{a}.{b}.{c}.{}", 10 + u16::from(i))
}

/// The cluster's subnet as the start of an address, e.g. `10.77.0.`.
pub fn subnet_prefix() -> String {
    let [a, b, c, _] = bridge_address().octets();
    format!("{a}.{b}.{c}.")
}

/// A scheduler on the bridge that jobs on every node can reach, and its
/// scheduler file in `dir`.
pub async fn bridge_scheduler(dir: &std::path::Path) -> (Scheduler, PathBuf) {
    let config = SchedulerConfig {
        heartbeat_interval: Duration::from_millis(500),
        missed_heartbeats: 3,
        ..SchedulerConfig::new(Bind::Interface(bridge()))
    };
    let s = Scheduler::start(config)
        .await
        .expect("a scheduler starts on the bridge");
    let file = dir.join("scheduler.json");
    s.write_scheduler_file(&file).unwrap();
    (s, file)
}

/// A name unique to this test run, for jobs and directories.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Cancels its job when dropped, so a failing test leaves nothing queued.
pub struct CancelOnDrop(pub JobId);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .arg(self.0.to_string())
            .env("SLURM_CONF", slurm_conf())
            .output();
    }
}

/// Ids of queued jobs named `name`.
pub fn jobs_named(name: &str) -> Vec<String> {
    slurm_cmd("squeue", &["-h", "-o", "%i", "--name", name])
        .lines()
        .map(str::to_string)
        .collect()
}

/// A fresh directory for job logs, visible to every node (same filesystem).
pub fn log_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("drover-logs")
        .tempdir()
        .expect("a temporary directory")
}

/// Serializes the tests of one binary that need the local cluster's
/// capacity to themselves (their job counts depend on what else runs).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    CAPACITY.lock().await
}

/// `exclusive` for tests that are not async.
pub fn exclusive_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    CAPACITY.blocking_lock()
}

static CAPACITY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Cluster options for tests: the scheduler on the bridge, short intervals,
/// no signal handling (the test harness owns the process).
pub fn test_cluster_options() -> drover::cluster::ClusterOptions {
    let mut o = drover::cluster::ClusterOptions::new(Bind::Interface(bridge()));
    o.poll_interval = Duration::from_millis(300);
    o.retry_backoff = Duration::from_millis(500);
    o.close_timeout = Duration::from_secs(5);
    o.handle_signals = false;
    o.slurm_conf = Some(slurm_conf());
    o
}

/// A worker job for tests: a unique name, `cores` cores, ib0, logs in
/// `logs`, a 10 s death timeout, this build's drover.
pub fn test_job(prefix: &str, cores: u32, logs: &std::path::Path) -> drover::config::JobOptions {
    drover::config::JobOptions::new()
        .job_name(unique(prefix))
        .cores(cores)
        .interface("ib0")
        .log_directory(logs)
        .death_timeout("10".parse::<drover::config::Timeout>().unwrap())
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
}

/// Waits until `ok` holds, looking every 200 ms; panics after `limit`.
pub async fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `found` gives a value, looking every 200 ms; panics after
/// `limit`.
pub async fn poll_until<T>(what: &str, limit: Duration, mut found: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = found() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Panics, naming them, if Slurm has drained or downed any node (a
/// controller crash can make it do so), after resuming them so the tests
/// that follow are not failed by it too.
pub fn assert_nodes_healthy() {
    let nodes = slurm_cmd("sinfo", &["-h", "-N", "-o", "%N %T %E"]);
    let sick: Vec<&str> = nodes
        .lines()
        .filter(|l| ["drain", "down", "fail"].iter().any(|s| l.contains(s)))
        .collect();
    for line in &sick {
        if let Some(node) = line.split_whitespace().next() {
            let arg = format!("nodename={node}");
            let _ = Command::new("scontrol")
                .args(["update", &arg, "state=resume"])
                .env("SLURM_CONF", slurm_conf())
                .output();
        }
    }
    assert!(sick.is_empty(), "Slurm took nodes out of service: {sick:?}");
}

/// A pool of `workers` jobs of `spec` on the local Slurm, with the test
/// options, once they have all registered.
pub async fn running_pool(
    spec: drover::config::JobOptions,
    slurm: TestSlurm,
    workers: usize,
) -> drover::cluster::SlurmCluster {
    let cluster =
        drover::cluster::SlurmCluster::new(spec.build().unwrap(), test_cluster_options(), slurm)
            .await
            .unwrap();
    cluster.scale(workers);
    cluster
        .wait_for_workers(workers, Duration::from_secs(60))
        .await
        .unwrap();
    cluster
}

/// Waits for every task in `ids` and asserts that each succeeded.
pub async fn all_succeed(
    client: &drover::client::SchedulerClient,
    ids: &[drover::tasks::TaskId],
) -> Vec<drover::tasks::TaskInfo> {
    let done = client
        .wait_tasks(Some(ids), Duration::from_millis(100))
        .await
        .unwrap();
    let failed: Vec<_> = done
        .iter()
        .filter(|t| t.state != drover::tasks::TaskState::Succeeded)
        .collect();
    assert!(failed.is_empty(), "every task succeeds: {failed:?}");
    done
}

/// Returns once slurmctld has written its whole job state to disk after
/// this call: it makes a change (a held job, cancelled) and waits for the
/// state file to be rewritten. A controller killed after this loses
/// nothing that came before, such as a test's cancellations.
pub async fn controller_state_saved() {
    // A crash test beside other work would take the controller from it.
    let queued = slurm_cmd("squeue", &["-h", "-o", "%i %j"]);
    let foreign: Vec<&str> = queued
        .lines()
        .filter(|l| !l.contains("drover-outage") && !l.contains("drover-rerun"))
        .collect();
    assert!(
        foreign.is_empty(),
        "other jobs are queued; a controller crash test must run alone: {foreign:?}"
    );
    let state = std::path::Path::new("/var/lib/drover-slurm/ctld/job_state");
    let written = || std::fs::metadata(state).and_then(|m| m.modified()).ok();
    let before = written();
    let id = slurm_cmd(
        "sbatch",
        &[
            "--parsable",
            "--hold",
            "-J",
            "drover-state-sync",
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ],
    );
    slurm_cmd("scancel", &[id.trim()]);
    let start = Instant::now();
    while written() <= before {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "slurmctld did not save its state within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Builds `job` into a worker job, creates its log directory, renders its
/// script and submits it with `options`: one worker job by hand.
pub async fn submit_worker_job(
    slurm: &dyn Slurm,
    job: drover::config::JobOptions,
    options: &drover::slurm::SubmitOptions,
) -> JobId {
    let spec = job
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    spec.ensure_log_directory().unwrap();
    let script = drover::script::render(&spec).unwrap();
    slurm.submit(&script, options).await.unwrap()
}

/// Tasks that each append their id to `path`, a file every node sees.
pub fn appending_tasks(n: u64, path: &std::path::Path) -> Vec<drover::tasks::TaskSpec> {
    (0..n)
        .map(|_| drover::tasks::TaskSpec {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!("echo \"$DROVER_TASK_ID\" >> {}", path.display()),
            ],
            ..Default::default()
        })
        .collect()
}

/// The task ids appended to `path` so far, one per line.
pub fn appended(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every task in `done` succeeded, and each of the `n` tasks appended its
/// id to `path` exactly once. Returns the lines counted.
pub fn assert_each_task_ran_once(
    done: &[drover::tasks::TaskInfo],
    path: &std::path::Path,
    n: u64,
) -> usize {
    let failed: Vec<_> = done
        .iter()
        .filter(|t| t.state != drover::tasks::TaskState::Succeeded)
        .take(5)
        .collect();
    assert!(failed.is_empty(), "every task succeeds: {failed:?}");
    let ran = appended(path);
    let mut seen = HashMap::<u64, u32>::new();
    for id in &ran {
        *seen.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "no task ran twice: {twice:?}");
    assert_eq!(seen.len() as u64, n, "every task ran");
    ran.len()
}

/// Whether the journal at `path` has been compacted (its second record
/// is a snapshot).
pub fn compacted(path: &std::path::Path) -> bool {
    use drover::journal::{Journal, Op};
    Journal::read(path).is_ok_and(|ops| matches!(ops.get(1), Some(Op::Snapshot(_))))
}

/// A node prolog that fails for the first job it sees, for one test: set in
/// slurm.conf and read by every slurmd (`scontrol reconfigure`); undone,
/// and the node it drained resumed, however the test ends.
pub struct FailingProlog {
    _dir: tempfile::TempDir,
}

impl FailingProlog {
    pub fn install() -> FailingProlog {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("fail-once");
        let script = dir.path().join("prolog.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# Fails once: the first job to start is held by Slurm.\n\
                 if rm {} 2>/dev/null; then exit 1; fi\nexit 0\n",
                marker.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&marker, "").unwrap();
        local_cluster(&["set", &format!("Prolog={}", script.display())]);
        slurm_cmd("scontrol", &["reconfigure"]);
        // From 23.11 `reconfigure` starts a new slurmctld, which refuses
        // jobs ("Requested node configuration is not available") until
        // the nodes have registered with it again.
        let start = Instant::now();
        loop {
            let states = slurm_cmd("sinfo", &["-h", "-N", "-o", "%T"]);
            let up = |s: &str| ["idle", "mixed", "allocated", "completing"].contains(&s.trim());
            if !states.trim().is_empty() && states.lines().all(up) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "nodes not back after reconfigure: {states}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        FailingProlog { _dir: dir }
    }
}

impl Drop for FailingProlog {
    fn drop(&mut self) {
        // The drained node first: `set` waits for every node to be back.
        for node in ["node1", "node2"] {
            let _ = Command::new("scontrol")
                .args(["update", &format!("nodename={node}"), "state=resume"])
                .env("SLURM_CONF", slurm_conf())
                .output();
        }
        local_cluster(&["set", "--reset"]);
        let _ = Command::new("scontrol")
            .arg("reconfigure")
            .env("SLURM_CONF", slurm_conf())
            .output();
    }
}
