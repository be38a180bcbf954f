//! The launcher patterns in `slurm/examples/`, submitted as they are to the
//! real local Slurm.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{local_slurm, slurm_cmd, slurm_conf, wait_for_state, CancelOnDrop};
use drover::slurm::JobId;

fn submit(example: &str, dir: &Path, env: &[(&str, &str)]) -> JobId {
    // Over REST the driver inside the job uses slurmrestd too, at the
    // address a node reaches it by (the job inherits the rest: sbatch
    // exports this environment).
    let rest_url = common::over_rest().then(common::rest_url_for_jobs);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("slurm/examples")
        .join(example);
    let out = common::run_ok(
        Command::new("sbatch")
            .arg("--parsable")
            .arg(&script)
            .current_dir(dir)
            .env("SLURM_CONF", slurm_conf())
            .env("DROVER", env!("CARGO_BIN_EXE_drover"))
            .env("DROVER_RUN_DIR", dir)
            .env("DROVER_POLL_INTERVAL", "0.3")
            .envs(env.iter().copied())
            .envs(rest_url.iter().map(|u| ("SLURMRESTD_URL", u))),
    );
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_job_with_workers_as_separate_jobs() {
    if local_slurm("driver_job_with_workers_as_separate_jobs").is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("drover-launch")
        .tempdir()
        .unwrap();
    let id = submit("workers-as-jobs.sbatch", dir.path(), &[("WORKERS", "2")]);
    let _cancel = CancelOnDrop(id);
    let log_file = dir.path().join(format!("drover-driver-{id}.out"));
    let read_log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let job = wait_for_state(id, "COMPLETED", Duration::from_secs(120)).await;
    let log = read_log();
    assert_eq!(job["ExitCode"], "0:0", "{log}");
    assert!(log.contains("2 of 2 workers registered"), "{log}");
    // The driver reached Slurm the way this run drives it.
    let backend = match common::over_rest() {
        true => "slurm: slurmrestd ",
        false => "slurm: Slurm's commands",
    };
    assert!(log.contains(backend), "{backend:?} in: {log}");
    let cluster = log
        .split("cluster ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the status names the cluster")
        .to_string();
    let left = slurm_cmd("squeue", &["-h", "-o", "%j"]);
    assert!(
        !left.lines().any(|n| n.ends_with(&cluster)),
        "worker jobs left: {left}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_allocation_with_scheduler_and_worker_steps() {
    if local_slurm("one_allocation_with_scheduler_and_worker_steps").is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("drover-launch")
        .tempdir()
        .unwrap();
    let id = submit("one-allocation.sbatch", dir.path(), &[]);
    let _cancel = CancelOnDrop(id);
    let job = wait_for_state(id, "COMPLETED", Duration::from_secs(120)).await;
    assert_eq!(job["ExitCode"], "0:0");
    let log = std::fs::read_to_string(dir.path().join(format!("drover-alloc-{id}.out"))).unwrap();
    assert!(log.contains("node1") && log.contains("node2"), "{log}");
    assert!(
        log.contains(&common::node_address(1)) && log.contains(&common::node_address(2)),
        "{log}"
    );
    assert!(log.contains("2 workers"), "{log}");
}
