//! Dask pools on the real local Slurm: the seed's Dask programs run
//! unchanged through `drover run --kind dask`, and scaling down retires
//! Dask workers through Dask so no result is lost.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::python::dask_python;
use common::{
    bridge, drover, exclusive, exclusive_blocking, final_states, local_slurm, log_dir,
    test_cluster_options, test_job,
};
use drover::cluster::SlurmCluster;
use drover::config::WorkerKind;
use drover::protocol::{DaskEndpoint, WorkerState};
use drover::slurm::{JobId, JobState};

/// `integration/dask/hold_results.py` on the pool at `address`: it holds 40
/// results until `check` gathers them, logging every computation in `dir`.
struct HeldResults {
    driver: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    calls: PathBuf,
}

impl HeldResults {
    /// Starts the driver; returns it and its `held ...` line.
    fn start(python: &Path, dask: &DaskEndpoint, dir: &Path) -> (HeldResults, String) {
        let calls = dir.join("calls");
        let mut driver = Command::new(python)
            .args([
                "-u",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/integration/dask/hold_results.py"
                ),
            ])
            .env("DASK_SCHEDULER_ADDRESS", &dask.address)
            .envs(dask.tls.iter().flat_map(|t| t.client_env()))
            .env("CALLS", &calls)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let held = lines.next().unwrap().unwrap();
        let me = HeldResults {
            driver,
            lines,
            calls,
        };
        (me, held)
    }

    /// Gathers the results; returns the driver's `ok ...` line and the log
    /// of computations (one line each).
    fn check(mut self) -> (String, String) {
        self.driver
            .stdin
            .take()
            .unwrap()
            .write_all(b"check\n")
            .unwrap();
        let checked = self.lines.next().unwrap().unwrap();
        assert!(self.driver.wait().unwrap().success());
        (checked, std::fs::read_to_string(&self.calls).unwrap())
    }
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("slurm/examples/dask")
        .join(name)
        .display()
        .to_string()
}

/// `drover run --kind dask` with `pool` flags around `driver`.
fn run_dask(python: &Path, logs: &Path, pool: &[&str], driver: &[&str]) -> (bool, String) {
    let py = python.display().to_string();
    let logs = logs.display().to_string();
    let mut args = vec![
        "run",
        "--kind",
        "dask",
        "--python",
        &py,
        "--interface",
        "ib0",
        "--log-directory",
        &logs,
    ];
    let bridge = bridge();
    args.extend(["--scheduler-interface", &bridge]);
    args.extend(pool);
    args.push("--");
    args.push(&py);
    args.push("-u");
    args.extend(driver);
    let out = drover(&args);
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_seed_delayed_graph_returns_50_with_dask_workers_on_both_nodes_on_ib0() {
    if local_slurm("the_seed_delayed_graph_returns_50").is_none() {
        return;
    }
    let Some(python) = dask_python("the_seed_delayed_graph_returns_50") else {
        return;
    };
    let _serial = exclusive_blocking();
    let logs = log_dir();
    // Two jobs of 12 of a node's 16 cores cannot share a node.
    let (ok, out) = run_dask(
        &python,
        logs.path(),
        &["--workers", "2", "--cores", "12"],
        &[&example("delayed_sum.py")],
    );
    assert!(ok, "{out}");
    assert!(out.contains("total = 50\n"), "{out}");
    let workers = out
        .lines()
        .find_map(|l| l.strip_prefix("workers: "))
        .unwrap_or_else(|| panic!("the driver lists its workers: {out}"));
    let hosts: BTreeSet<&str> = workers
        .split_whitespace()
        .map(|w| {
            w.strip_prefix("tls://")
                .unwrap_or("not over TLS")
                .rsplit_once(':')
                .expect("host:port")
                .0
        })
        .collect();
    assert_eq!(
        hosts.iter().map(|h| h.to_string()).collect::<BTreeSet<_>>(),
        BTreeSet::from([common::node_address(1), common::node_address(2)]),
        "one Dask worker on each node, on its ib0 address, over TLS: {out}"
    );
}

#[test]
fn xgboost_trains_through_xgboost_dask_and_plots_feature_importance() {
    if local_slurm("xgboost_trains_through_xgboost_dask").is_none() {
        return;
    }
    let Some(python) = dask_python("xgboost_trains_through_xgboost_dask") else {
        return;
    };
    let _serial = exclusive_blocking();
    let logs = log_dir();
    let plot = logs.path().join("feature-importance.png");
    let plot_arg = plot.display().to_string();
    let (ok, out) = run_dask(
        &python,
        logs.path(),
        &["--workers", "2", "--cores", "2", "--memory", "2GiB"],
        &[
            &example("xgboost_train.py"),
            "--rows",
            "20000",
            "--out",
            &plot_arg,
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("trained 20 rounds"), "{out}");
    let bytes = std::fs::read(&plot).unwrap_or_else(|e| panic!("no plot file ({e}): {out}"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "the plot is a real PNG image ({} bytes)",
        bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_dask_pool_from_4_to_1_loses_no_result_and_ends_jobs_completed() {
    let Some(slurm) = local_slurm("scaling_a_dask_pool_from_4_to_1") else {
        return;
    };
    let Some(python) = dask_python("scaling_a_dask_pool_from_4_to_1") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let spec = test_job("drover-dask-scale", 1, logs.path())
        .kind(WorkerKind::Dask)
        .python(python.clone())
        .build()
        .unwrap();
    let cluster = SlurmCluster::new(spec, test_cluster_options(), slurm)
        .await
        .unwrap();
    let dask = cluster.dask().expect("a dask pool has a Dask scheduler");
    cluster.scale(4);
    cluster
        .wait_for_workers(4, Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(cluster.status().dask.unwrap().workers, Some(4));

    let (held_results, held) = HeldResults::start(&python, &dask, logs.path());
    let spread: usize = held
        .strip_prefix("held 40 results on ")
        .and_then(|r| r.strip_suffix(" workers"))
        .unwrap_or_else(|| panic!("unexpected: {held}"))
        .parse()
        .unwrap();
    assert!(
        spread >= 3,
        "results spread over the pool before it shrinks: {held}"
    );
    let jobs_before: BTreeSet<u64> = cluster
        .status()
        .jobs
        .iter()
        .filter_map(|j| j.job_id.map(JobId::get))
        .collect();

    cluster.scale(1);
    let start = Instant::now();
    loop {
        let status = cluster.status();
        let active = status
            .jobs
            .iter()
            .filter(|j| {
                matches!(
                    j.state,
                    JobState::Pending | JobState::Running | JobState::Completing
                )
            })
            .count();
        if active == 1 && status.dask.as_ref().and_then(|d| d.workers) == Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pool did not shrink to 1: {:?}",
            status.jobs
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (checked, computed) = held_results.check();
    assert_eq!(checked, "ok 40 of 40 on 1 workers");
    assert_eq!(
        computed.lines().count(),
        40,
        "no result was lost and computed again: {computed}"
    );

    // The three retired jobs end on their own: COMPLETED, not CANCELLED.
    let kept: BTreeSet<u64> = cluster
        .status()
        .jobs
        .iter()
        .filter(|j| j.workers.iter().any(|w| w.state == WorkerState::Running))
        .filter_map(|j| j.job_id.map(JobId::get))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", cluster.status().jobs);
    let retired: Vec<u64> = jobs_before.difference(&kept).copied().collect();
    assert_eq!(retired.len(), 3, "{jobs_before:?} {kept:?}");
    for (id, state) in final_states(retired, Duration::from_secs(60)).await {
        assert_eq!(state, "COMPLETED", "retired job {id}");
    }
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_attaches_to_a_dask_scheduler_started_elsewhere() {
    let Some(slurm) = local_slurm("a_pool_attaches_to_a_dask_scheduler") else {
        return;
    };
    let Some(python) = dask_python("a_pool_attaches_to_a_dask_scheduler") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let mut theirs = their_dask_scheduler(&python, logs.path()).await;
    let spec = test_job("drover-dask-attach", 1, logs.path())
        .kind(WorkerKind::Dask)
        .python(python.clone())
        .build()
        .unwrap();
    let mut options = test_cluster_options();
    options.dask_scheduler_file = Some(theirs.1.scheduler_file.clone());
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    assert_eq!(cluster.dask().unwrap().address, theirs.1.address);
    cluster.scale(2);
    cluster
        .wait_for_workers(2, Duration::from_secs(90))
        .await
        .unwrap();
    let api = drover::dask::DaskApi::new(&theirs.1);
    let names: BTreeSet<String> = api
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    let expected: BTreeSet<String> = cluster
        .status()
        .jobs
        .iter()
        .map(|j| drover::dask::dask_name(&j.job.to_string()))
        .collect();
    assert_eq!(names, expected, "Dask names carry the Slurm job");
    cluster.close().await.unwrap();
    assert!(
        api.workers().await.unwrap().is_empty(),
        "closing retired the workers from the attached scheduler"
    );
    let _ = theirs.0.kill().await;
}

/// A Dask scheduler as a user starts one by hand (not through drover), on
/// the bridge, serving Dask's `/api/v1` as the README asks of one a pool
/// attaches to; returned once that API answers.
async fn their_dask_scheduler(
    python: &std::path::Path,
    dir: &std::path::Path,
) -> (tokio::process::Child, drover::protocol::DaskEndpoint) {
    let file = dir.join("their-dask-scheduler.json");
    let log = std::fs::File::create(dir.join("their-dask-scheduler.log")).unwrap();
    let child = tokio::process::Command::new(python)
        .args(["-m", "distributed.cli.dask_scheduler", "--scheduler-file"])
        .arg(&file)
        .args(["--interface", &bridge(), "--dashboard-address", ":0"])
        .env(
            "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES",
            "[\"distributed.http.scheduler.api\", \"distributed.http.scheduler.json\", \"distributed.http.health\"]",
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(endpoint) = drover::dask::read_scheduler_file(&file) {
            if drover::dask::DaskApi::new(&endpoint)
                .workers()
                .await
                .is_ok()
            {
                return (child, endpoint);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "their Dask scheduler did not answer within 60 s"
        );
        // Polling a process we do not control: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 29 C: the Dask scheduler drover starts serves its HTTP side on
/// the scheduler's own address only, without Dask's unauthenticated
/// `/api/v1` or proxy, and drover's routes want the pool's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dask_schedulers_http_side_is_closed_to_others() {
    if local_slurm("the_dask_schedulers_http_side_is_closed").is_none() {
        return;
    }
    let Some(python) = dask_python("the_dask_schedulers_http_side_is_closed") else {
        return;
    };
    let logs = log_dir();
    let dir = drover::private_fs::PrivateDir::ensure(logs.path(), Default::default()).unwrap();
    let mut ours = drover::dask::DaskScheduler::start(
        &python,
        &drover::dask::DaskBind::Interface(bridge()),
        &Default::default(),
        None,
        &dir,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let endpoint = ours.endpoint().clone();
    let url: reqwest::Url = endpoint.http.parse().unwrap();
    let port = url.port().unwrap();
    assert_ne!(url.host_str(), Some("127.0.0.1"), "{url}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the dashboard answers on 127.0.0.1:{port}, so on every interface"
    );
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let get = |path: &str| http.get(format!("{}{path}", endpoint.http)).send();
    assert_eq!(status(get("/api/v1/get_workers").await.unwrap()), 404);
    assert_eq!(
        status(get("/proxy/8786/127.0.0.1/status").await.unwrap()),
        404
    );
    assert_eq!(status(get("/drover/v1/workers").await.unwrap()), 403);
    let wrong = http
        .get(format!("{}/drover/v1/workers", endpoint.http))
        .bearer_auth(drover::protocol::Token::generate().expose())
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 403);
    let retire = http
        .post(format!("{}/drover/v1/retire", endpoint.http))
        .body(r#"{"workers": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(retire), 403);
    // With the pool's token, drover reads it.
    let api = drover::dask::DaskApi::new(&endpoint);
    assert!(api.workers().await.unwrap().is_empty());
    assert_eq!(api.desired_workers().await.unwrap(), 0);
    assert!(api
        .retire(&[], Duration::from_secs(10))
        .await
        .unwrap()
        .is_empty());
    ours.stop().await;
}

#[test]
fn a_missing_python_is_a_clear_error_and_nothing_is_submitted() {
    if local_slurm("a_missing_python_is_a_clear_error").is_none() {
        return;
    }
    let logs = log_dir();
    let name = common::unique("drover-nopython");
    let out = drover(&[
        "run",
        "--kind",
        "dask",
        "--python",
        "/nonexistent/bin/python",
        "--workers",
        "2",
        "--interface",
        "ib0",
        "--scheduler-interface",
        &bridge(),
        "--job-name",
        &name,
        "--log-directory",
        &logs.path().display().to_string(),
        "--",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("/nonexistent/bin/python") && err.contains("--python PATH"),
        "{err}"
    );
    assert!(
        common::jobs_named(&name).is_empty()
            && common::slurm_cmd("squeue", &["-h", "-o", "%j"])
                .lines()
                .all(|j| !j.starts_with(&name)),
        "nothing was submitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_dask_pool_follows_dask_work_and_returns_to_zero() {
    let Some(slurm) = local_slurm("an_adaptive_dask_pool") else {
        return;
    };
    let Some(python) = dask_python("an_adaptive_dask_pool") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let spec = test_job("drover-dask-adapt", 1, logs.path())
        .kind(WorkerKind::Dask)
        .python(python.clone())
        .build()
        .unwrap();
    let mut options = test_cluster_options();
    options.idle_timeout = Duration::from_secs(3);
    options.cooldown = Duration::from_secs(2);
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    let name = cluster.job_name().to_string();
    let dask = cluster.dask().unwrap();
    cluster.adapt(0, 4);
    cluster.rounds(3).await;
    assert_eq!(cluster.status().submitted, 0, "no Dask work, no jobs");

    // 24 tasks of 2 s: once Dask knows their duration it wants more workers
    // than the range allows.
    let driver = tokio::process::Command::new(&python)
        .args([
            "-u",
            concat!(env!("CARGO_MANIFEST_DIR"), "/integration/dask/burst.py"),
            "24",
            "2",
        ])
        .env("DASK_SCHEDULER_ADDRESS", &dask.address)
        .envs(dask.tls.iter().flat_map(|t| t.client_env()))
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), driver)
        .await
        .expect("the burst finishes within 2 minutes")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: u64 = (0..24u64).map(|i| i * i).sum();
    assert!(text.starts_with(&format!("sum = {sum}; ")), "{text}");
    let most: usize = text
        .trim()
        .rsplit_once("at most ")
        .and_then(|(_, r)| r.strip_suffix(" workers"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        (2..=4).contains(&most),
        "the pool grew with the work, within its range: {text}"
    );

    // The work done and its results released, the pool goes back to 0.
    let start = Instant::now();
    loop {
        let queued = common::slurm_cmd("squeue", &["-h", "-n", &name]);
        if queued.trim().is_empty() && cluster.scheduler().live_workers() == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pool did not shrink to 0: {queued}\n{:?}",
            cluster.status().adapt
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let the pool take two more looks at Slurm, so it knows how the jobs ended.
    cluster.rounds(2).await;
    let status = cluster.status();
    assert!(
        status.jobs.iter().all(|j| j.state == JobState::Completed),
        "every job retired through Dask and ended COMPLETED: {:?}",
        status.jobs
    );
    assert!(
        status.submitted as usize <= 4,
        "no submit/cancel churn: {} jobs for a pool of at most 4",
        status.submitted
    );
    assert_eq!(status.target_jobs, 0);
    eprintln!(
        "adaptive Dask pool: {}; {} jobs submitted; last decision: {:?}",
        text.trim(),
        status.submitted,
        status.adapt
    );
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dask_workers_hand_their_results_on_before_their_walltime_ends() {
    let Some(slurm) = local_slurm("dask_workers_hand_their_results_on") else {
        return;
    };
    let Some(python) = dask_python("dask_workers_hand_their_results_on") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    eprintln!("logs in {}", logs.path().display());
    let spec = test_job("drover-dask-walltime", 1, logs.path())
        .kind(WorkerKind::Dask)
        .python(python.clone())
        .walltime("00:02:00".parse::<drover::config::Walltime>().unwrap())
        .walltime_margin("30s".parse::<drover::config::Timeout>().unwrap())
        .build()
        .unwrap();
    let mut options = test_cluster_options();
    options.replace_lead = Duration::from_secs(15);
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    let dask = cluster.dask().unwrap();
    cluster.scale(2);
    cluster
        .wait_for_workers(2, Duration::from_secs(90))
        .await
        .unwrap();
    let first: BTreeSet<u64> = cluster
        .status()
        .jobs
        .iter()
        .filter_map(|j| j.job_id.map(JobId::get))
        .collect();

    let (held_results, held) = HeldResults::start(&python, &dask, logs.path());
    assert!(held.starts_with("held 40 results on "), "{held}");

    // The first jobs' workers leave 78-90 s in; their results must move
    // to the replacements, submitted ahead of time.
    let ended = final_states(first, Duration::from_secs(150)).await;
    assert!(
        ended.iter().all(|(_, s)| s == "COMPLETED"),
        "the first jobs ended COMPLETED, not TIMEOUT: {ended:?}"
    );
    let status = cluster.status();
    assert!(status.submitted >= 4, "replacements went in: {status:?}");

    let (checked, computed) = held_results.check();
    assert!(checked.starts_with("ok 40 of 40 on "), "{checked}");
    assert_eq!(
        computed.lines().count(),
        40,
        "no result was lost at the walltime boundary and computed again"
    );
    cluster.close().await.unwrap();
}

/// A Dask pool with a safe group (a job of `small` holding node1 whole,
/// never preempted) and a cheap one (two jobs on `scavenger`, so on node2)
/// holds 40 results
/// spread over its three workers. A job of `urgent` takes node2 whole:
/// Slurm preempts the cheap jobs, its SIGTERM reaching every process of
/// them. Their Dask workers retire through Dask (drover's preload) within
/// Slurm's GraceTime (10 s here), so their results move to the safe
/// worker: all 40 are gathered from it, and none was computed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preempted_dask_workers_hand_their_results_on_first() {
    let Some(slurm) = local_slurm("preempted_dask_workers_hand_their_results_on") else {
        return;
    };
    let Some(python) = dask_python("preempted_dask_workers_hand_their_results_on") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let dask_job = |prefix: &str, cores: u32| {
        test_job(prefix, cores, logs.path())
            .kind(WorkerKind::Dask)
            .python(python.clone())
    };
    let cpus: u32 = common::slurm_cmd("sinfo", &["-h", "-n", "node1", "-o", "%c"])
        .trim()
        .parse()
        .unwrap();
    let groups = vec![
        drover::cluster::Group {
            name: "safe".into(),
            spec: dask_job("drover-dask-safe", cpus)
                .queue("small")
                .build()
                .unwrap(),
        },
        drover::cluster::Group {
            name: "cheap".into(),
            spec: dask_job("drover-dask-cheap", 1)
                .queue("scavenger")
                .build()
                .unwrap(),
        },
    ];
    let cluster = SlurmCluster::with_groups(groups, test_cluster_options(), slurm)
        .await
        .unwrap();
    let dask = cluster.dask().unwrap();
    // The safe job first, so that node1 is full when the cheap ones come.
    cluster.scale_group("safe", 1).unwrap();
    cluster
        .wait_for_workers(1, Duration::from_secs(90))
        .await
        .unwrap();
    cluster.scale_group("cheap", 2).unwrap();
    cluster
        .wait_for_workers(3, Duration::from_secs(90))
        .await
        .unwrap();
    let (held_results, held) = HeldResults::start(&python, &dask, logs.path());
    let spread: usize = held
        .strip_prefix("held 40 results on ")
        .and_then(|r| r.strip_suffix(" workers"))
        .unwrap_or_else(|| panic!("unexpected: {held}"))
        .parse()
        .unwrap();
    assert!(spread >= 2, "some results on the cheap workers: {held}");
    let cheap_nodes: Vec<Option<String>> = cluster
        .status()
        .groups
        .iter()
        .filter(|g| g.group.as_deref() == Some("cheap"))
        .flat_map(|g| g.jobs.iter().map(|j| j.node.clone()))
        .collect();
    assert!(
        cheap_nodes.iter().all(|n| n.as_deref() == Some("node2")),
        "{cheap_nodes:?}"
    );
    let _urgent = common::CancelOnDrop(common::urgent_job(&["-w", "node2"], 5));
    let start = Instant::now();
    while cluster.status().dask.and_then(|d| d.workers) != Some(1) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the cheap workers were not preempted: {:#?}",
            cluster.status().jobs
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (checked, computed) = held_results.check();
    assert_eq!(checked, "ok 40 of 40 on 1 workers");
    assert_eq!(
        computed.lines().count(),
        40,
        "no result was lost to the preemption and computed again: {computed}"
    );
    // Slurm requeues the jobs once its grace is over: then the pool counts it.
    common::until("the preemptions counted", Duration::from_secs(60), || {
        cluster.status().preemptions >= 1
    })
    .await;
    cluster.close().await.unwrap();
}
