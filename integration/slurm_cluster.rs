//! `SlurmCluster` and `drover cluster up` / `drover run` on the real local
//! Slurm: scaling with exact job counts, waiting with reasons, start-up
//! failures, healing, and no job left behind however the driver ends.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    bridge, exclusive, exclusive_blocking, jobs_named, local_slurm, log_dir, run_ok, slurm_cmd,
    slurm_conf, test_cluster_options, test_job, unique, until, KillOnDrop,
};
use drover::cluster::{ClusterError, SlurmCluster};
use drover::config::JobOptions;
use drover::protocol::{JobAction, PoolPhase, StopCause};

async fn start(spec: JobOptions, slurm: common::TestSlurm) -> SlurmCluster {
    let cluster = SlurmCluster::new(spec.build().unwrap(), test_cluster_options(), slurm)
        .await
        .unwrap();
    common::assert_backend(&cluster.status());
    cluster
}

/// Active jobs named `name`, as `squeue` lists them: (job, state).
fn queued(name: &str) -> Vec<(String, String)> {
    slurm_cmd("squeue", &["-h", "-r", "-n", name, "-o", "%i %T"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(j, s)| (j.to_string(), s.to_string()))
        .collect()
}

/// Final state of a job, from `squeue -t all` (ended jobs stay listed for
/// MinJobAge).
fn final_state(job: &str) -> String {
    slurm_cmd("squeue", &["-h", "-t", "all", "-r", "-o", "%i %T"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(j, _)| *j == job)
        .map(|(_, s)| s.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_0_8_3_0_with_exact_job_counts_and_pending_cancelled_first() {
    let Some(slurm) = local_slurm("scale_0_8_3_0") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    // 6 cores a job: two fit on each 16-CPU node, so 8 jobs are 4 running, 4 pending.
    let cluster = start(test_job("drover-scale", 6, logs.path()), slurm).await;
    let name = cluster.job_name().to_string();
    assert!(queued(&name).is_empty());

    cluster.scale(8);
    cluster
        .wait_for_workers(4, Duration::from_secs(60))
        .await
        .unwrap();
    let q = queued(&name);
    assert_eq!(q.len(), 8, "{q:?}");
    let pending: Vec<String> = q
        .iter()
        .filter(|(_, s)| s == "PENDING")
        .map(|(j, _)| j.clone())
        .collect();
    assert_eq!(pending.len(), 4, "{q:?}");

    cluster.scale(3);
    until("3 jobs left", Duration::from_secs(30), || {
        queued(&name).len() == 3
    })
    .await;
    let left: Vec<String> = queued(&name).into_iter().map(|(j, _)| j).collect();
    let status = cluster.status();
    for p in &pending {
        assert!(
            !left.contains(p),
            "pending job {p} should have gone first: {left:?}"
        );
        let job = status
            .jobs
            .iter()
            .find(|j| &j.job.to_string() == p)
            .unwrap();
        assert_eq!(job.action, Some(JobAction::Cancelling), "{job:?}");
        assert!(job.workers.is_empty(), "{job:?}");
    }
    until("3 workers live", Duration::from_secs(15), || {
        cluster.scheduler().live_workers() == 3
    })
    .await;
    // The one running job removed was retired: its worker left and its job COMPLETED.
    let retired: Vec<_> = cluster
        .status()
        .jobs
        .into_iter()
        .filter(|j| j.action == Some(JobAction::Retiring))
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");
    until("the retired job completes", Duration::from_secs(15), || {
        final_state(&retired[0].job.to_string()) == "COMPLETED"
    })
    .await;

    cluster.scale(0);
    until("no job left", Duration::from_secs(30), || {
        queued(&name).is_empty()
    })
    .await;
    assert_eq!(cluster.scheduler().live_workers(), 0);
    cluster.close().await.unwrap();
    assert!(queued(&name).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_more_than_fits_reports_pending_resources() {
    let Some(slurm) = local_slurm("waiting_for_more_than_fits") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let cluster = start(test_job("drover-big", 16, logs.path()), slurm).await;
    let name = cluster.job_name().to_string();
    cluster.scale(3); // two nodes of 16 CPUs hold two such jobs
    let err = cluster
        .wait_for_workers(3, Duration::from_secs(8))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClusterError::WaitTimeout { .. }), "{text}");
    assert!(text.contains("PENDING (Resources)"), "{text}");
    cluster.close().await.unwrap();
    assert!(queued(&name).is_empty(), "close() leaves no job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_prologue_is_reported_with_its_log_and_not_resubmitted_forever() {
    let Some(slurm) = local_slurm("a_failing_prologue") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let spec = test_job("drover-venv", 1, logs.path()).job_script_prologue(vec![
        "echo 'Error with virtualenv' >&2".to_string(),
        "exit 1".to_string(),
    ]);
    let cluster = start(spec, slurm).await;
    cluster.scale(2);
    let err = cluster
        .wait_for_workers(2, Duration::from_secs(120))
        .await
        .unwrap_err();
    let text = err.to_string();
    // The wait ends on the failure itself, not on its timeout.
    assert!(matches!(err, ClusterError::StartupFailed(_)), "{text}");
    assert!(
        text.contains("ended FAILED with exit code 1 before its worker registered"),
        "{text}"
    );
    assert!(text.contains("Error with virtualenv"), "{text}");
    // After max_startup_failures (3) in a row the cluster stops and says so.
    until(
        "the cluster stops submitting",
        Duration::from_secs(60),
        || matches!(cluster.status().phase, PoolPhase::Stopped { .. }),
    )
    .await;
    let stopped = cluster.status();
    assert!(
        matches!(
            stopped.phase,
            PoolPhase::Stopped {
                cause: StopCause::StartupFailures { in_a_row, .. }
            } if in_a_row >= 3
        ),
        "{:?}",
        stopped.phase
    );
    let submitted = stopped.submitted;
    cluster.rounds(5).await;
    assert_eq!(
        cluster.status().submitted,
        submitted,
        "no resubmission once stopped"
    );
    let again = cluster
        .wait_for_workers(2, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(again, ClusterError::Stopped(_)), "{again}");
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn externally_cancelled_workers_are_replaced() {
    let Some(slurm) = local_slurm("externally_cancelled_workers_are_replaced") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let cluster = start(test_job("drover-heal", 1, logs.path()), slurm).await;
    let name = cluster.job_name().to_string();
    cluster.scale(4);
    cluster
        .wait_for_workers(4, Duration::from_secs(60))
        .await
        .unwrap();
    let victims: Vec<String> = queued(&name).into_iter().take(2).map(|(j, _)| j).collect();
    slurm_cmd(
        "scancel",
        &victims.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    until(
        "two replacements registered",
        Duration::from_secs(60),
        || {
            let q = queued(&name);
            q.len() == 4
                && q.iter()
                    .all(|(j, s)| !victims.contains(j) && s == "RUNNING")
                && cluster.scheduler().live_workers() == 4
        },
    )
    .await;
    cluster.close().await.unwrap();
    assert!(queued(&name).is_empty());
}

#[test]
fn sigkill_of_the_driver_leaves_no_job_within_the_bound() {
    if local_slurm("sigkill_of_the_driver").is_none() {
        return;
    }
    let _serial = exclusive_blocking();
    let logs = log_dir();
    let prefix = unique("drover-kill9");
    let mut driver = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "cluster",
                "up",
                "--workers",
                "3",
                "--interface",
                "ib0",
                "--death-timeout",
                "5",
            ])
            .args([
                "--scheduler-interface",
                &bridge(),
                "--job-name",
                &prefix,
                "--log-directory",
            ])
            .arg(logs.path())
            .env("SLURM_CONF", slurm_conf())
            .env("DROVER_POLL_INTERVAL", "0.3")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut name = String::new();
    for line in BufReader::new(driver.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("jobs named ").nth(1) {
            name = rest.trim_end_matches(')').to_string();
        }
        if line.starts_with("ready:") {
            break;
        }
    }
    assert!(name.starts_with(&prefix), "{name}");
    assert_eq!(queued(&name).len(), 3);
    driver.0.kill().unwrap(); // SIGKILL: no chance to clean up
    let killed = Instant::now();
    let bound = Duration::from_secs(5) + Duration::from_millis(300) + Duration::from_secs(5);
    while !queued(&name).is_empty() {
        assert!(
            killed.elapsed() < bound,
            "jobs left {:?} after SIGKILL: {:?}",
            killed.elapsed(),
            queued(&name)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn drover_run_false_exits_1_and_leaves_no_job() {
    if local_slurm("drover_run_false").is_none() {
        return;
    }
    let _serial = exclusive_blocking();
    let logs = log_dir();
    let prefix = unique("drover-runfalse");
    let run = |cmd: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "run",
                "--workers",
                "2",
                "--interface",
                "ib0",
                "--scheduler-interface",
                &bridge(),
            ])
            .args(["--job-name", &prefix, "--log-directory"])
            .arg(logs.path())
            .arg("--")
            .args(cmd)
            .env("SLURM_CONF", slurm_conf())
            .env("DROVER_POLL_INTERVAL", "0.3")
            .output()
            .unwrap()
    };
    let out = run(&["false"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = |prefix: &str| {
        slurm_cmd("squeue", &["-h", "-o", "%j"])
            .lines()
            .filter(|n| n.starts_with(prefix))
            .count()
    };
    assert_eq!(mine(&prefix), 0, "drover run left jobs behind");

    // The command sees the pool: its scheduler file and address; it runs
    // a task and asks what the pool cost so far (`drover report`).
    let drover = env!("CARGO_BIN_EXE_drover");
    let script = format!(
        "test -s \"$DROVER_SCHEDULER_FILE\" && echo \"$DROVER_SCHEDULER_ADDRESS\"; \
         {drover} submit --wait -- sleep 1 >/dev/null && {drover} report --json && {drover} report; exit 7"
    );
    let out = run(&["sh", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stdout.starts_with(&format!("https://{}:", common::bridge_address())));
    assert_eq!(mine(&prefix), 0);
    // The JSON report (between the address and the table) and the table.
    let json = &stdout[stdout.find('{').unwrap()..=stdout.rfind("\n}").unwrap() + 1];
    let report: drover::protocol::Report = serde_json::from_str(json).unwrap();
    assert_eq!(report.total.workers, 2, "{report:?}");
    assert!(
        (1.0..5.0).contains(&report.total.busy_core_seconds),
        "the 1 s task: {report:?}"
    );
    assert!(report.groups.is_empty(), "{report:?}");
    let table = &stdout[stdout.rfind("\n}").unwrap() + 2..];
    assert!(
        table.contains("BUSY CORE-H") && table.contains("total"),
        "{table}"
    );
    assert!(table.contains("2 workers, "), "{table}");
    // Closing, drover run says what the pool cost.
    assert!(
        stderr.contains("drover: 2 workers, ") && stderr.contains(" core-h allocated, "),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_status_scale_logs_and_close_reach_a_running_cluster() {
    let Some(_slurm) = local_slurm("cli_reaches_a_running_cluster") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let file = logs.path().join("pool.json");
    let prefix = unique("drover-cli");
    let mut up = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "cluster",
                "up",
                "--workers",
                "1",
                "--interface",
                "ib0",
                "--scheduler-interface",
                &bridge(),
            ])
            .args(["--job-name", &prefix, "--scheduler-file"])
            .arg(&file)
            .arg("--log-directory")
            .arg(logs.path())
            .env("SLURM_CONF", slurm_conf())
            .env("DROVER_POLL_INTERVAL", "0.3")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = up.0.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Read to the end, so the cluster never writes into a closed pipe.
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ready:") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the cluster said it was ready");
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.args(args)
            .env("DROVER_SCHEDULER_FILE", &file)
            .env("SLURM_CONF", slurm_conf());
        c
    };
    let drover = |args: &[&str]| command(args).output().unwrap();
    run_ok(&mut command(&["scale", "2"]));
    let mut status = serde_json::Value::Null;
    until(
        "two workers through the CLI",
        Duration::from_secs(60),
        || {
            let out = drover(&["status", "--json"]);
            status = serde_json::from_slice(&out.stdout).unwrap_or_default();
            status["registered"] == 2
        },
    )
    .await;
    let table = String::from_utf8_lossy(&drover(&["status"]).stdout).into_owned();
    assert!(table.contains("2 of 2 workers registered"), "{table}");
    common::assert_backend(&serde_json::from_value(status.clone()).unwrap());
    let job = status["jobs"][0]["job_id"].as_u64().unwrap().to_string();
    let log = drover(&["logs", &job, "--tail", "5"]);
    let text = String::from_utf8_lossy(&log.stdout);
    assert!(text.contains("registered"), "{text}");
    run_ok(&mut command(&["close"]));
    assert!(up.0.wait().unwrap().success());
    let said = reader.join().unwrap();
    assert!(said.contains("closed cluster"), "{said}");
    let left = slurm_cmd("squeue", &["-h", "-o", "%j"]);
    assert!(!left.lines().any(|n| n.starts_with(&prefix)), "{left}");
}

/// `cluster up --detach` with the user's own scheduler file: it comes up in
/// the background, `status` and `close` reach it through that file, and
/// each array task's log is found under the id `status` shows (`A_T`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_cluster_with_its_own_scheduler_file_serves_and_closes() {
    if local_slurm("a_detached_cluster").is_none() {
        return;
    }
    let _serial = exclusive().await;
    let logs = log_dir();
    let file = logs.path().join("mine.scheduler.json");
    let name = unique("drover-detach");
    let up = run_ok(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "cluster",
                "up",
                "--detach",
                "--workers",
                "2",
                "--cores",
                "1",
            ])
            .args(["--interface", "ib0", "--scheduler-interface", &bridge()])
            .args(["--job-name", &name, "--scheduler-file"])
            .arg(&file)
            .arg("--log-directory")
            .arg(logs.path())
            .env("SLURM_CONF", slurm_conf())
            .env("DROVER_USER_CONFIG", "/dev/null")
            .env("DROVER_POLL_INTERVAL", "0.3"),
    );
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(
        said.contains(&format!("export DROVER_SCHEDULER_FILE={}", file.display())),
        "{said}"
    );
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.args(args)
            .arg("--scheduler-file")
            .arg(&file)
            .env("SLURM_CONF", slurm_conf());
        c
    };
    let out = run_ok(&mut command(&["status", "--json"]));
    let status: drover::protocol::ClusterStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status.registered, 2, "{status:?}");
    common::assert_backend(&status);
    for job in &status.jobs {
        assert!(
            matches!(job.job, drover::slurm::JobRef::Task { .. }),
            "two workers go as one array: {job:?}"
        );
        let log = logs
            .path()
            .join(format!("{}-{}.out", status.job_name, job.job));
        assert_eq!(job.log, log);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("registered"), "{}: {text}", log.display());
    }
    run_ok(&mut command(&["close"]));
    assert!(jobs_named(&status.job_name).is_empty());
}
