//! Worker job scripts against the real local Slurm (`slurm/local-cluster`).

mod common;

use std::time::Duration;

use common::{
    drover, jobs_named, local_slurm, show_job, slurm_cmd, unique, wait_for_state, CancelOnDrop,
};
use drover::config::{JobOptions, Memory};
use drover::slurm::{Slurm, SubmitOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A rendered script submitted held shows exactly the request in
/// `scontrol show job`; released, it runs on a node and writes its log where
/// the spec said, named by job id.
#[test]
fn held_job_carries_the_request_and_logs_where_asked() {
    let Some(slurm) = local_slurm("held_job_carries_the_request_and_logs_where_asked") else {
        return;
    };
    let name = unique("drover-it");
    let logs = tempfile::Builder::new()
        .prefix("drover-logs")
        .tempdir()
        .unwrap();
    let spec = JobOptions::new()
        .cores(4u32)
        .memory("8GB".parse::<Memory>().unwrap())
        .walltime("00:30:00".parse::<drover::config::Walltime>().unwrap())
        .queue("small")
        .job_name(name.clone())
        .interface("ib0")
        .log_directory(logs.path())
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    spec.ensure_log_directory().unwrap();
    let script = drover::script::render(&spec).unwrap();
    let rt = runtime();
    let id = rt
        .block_on(slurm.submit(&script, &SubmitOptions { hold: true }))
        .unwrap();
    let _cancel = CancelOnDrop(id);

    let job = show_job(id);
    assert_eq!(job["JobState"], "PENDING", "{job:?}");
    assert_eq!(job["Reason"], "JobHeldUser", "{job:?}");
    assert_eq!(job["JobName"], name);
    assert_eq!(job["Partition"], "small");
    assert_eq!(job["NumCPUs"], "4", "{job:?}");
    assert_eq!(job["CPUs/Task"], "4", "{job:?}");
    assert_eq!(job["NumNodes"], "1-1", "{job:?}");
    assert_eq!(job["MinMemoryNode"], "7630M", "{job:?}");
    assert_eq!(job["TimeLimit"], "00:30:00");
    // The local cluster runs without accounting, so it has no accounts to
    // charge: the account field is the one part of the request not checked here.
    assert_eq!(
        job["StdOut"],
        format!("{}/{name}-{id}.out", logs.path().display())
    );

    slurm_cmd("scontrol", &["release", &id.to_string()]);
    let done = wait_for_state(id, "COMPLETED", Duration::from_secs(60));
    assert_eq!(
        done["NodeList"], "node1",
        "the small partition holds node1 only"
    );
    assert_eq!(done["ExitCode"], "0:0");
    let log = std::fs::read_to_string(logs.path().join(format!("{name}-{id}.out"))).unwrap();
    assert!(
        log.contains(&format!(
            "drover worker: job {id} on node1 (ib0 10.77.0.11)"
        )),
        "log: {log}"
    );
}

/// Each node is its own host: a job pinned to node2 sees node2's hostname
/// and ib0 address.
#[test]
fn jobs_on_the_second_node_see_its_hostname_and_ib0() {
    let Some(slurm) = local_slurm("jobs_on_the_second_node_see_its_hostname_and_ib0") else {
        return;
    };
    let name = unique("drover-node2");
    let logs = tempfile::Builder::new()
        .prefix("drover-logs")
        .tempdir()
        .unwrap();
    let spec = JobOptions::new()
        .job_name(name.clone())
        .interface("ib0")
        .log_directory(logs.path())
        .job_extra_directives(vec!["--nodelist=node2".to_string()])
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap();
    spec.ensure_log_directory().unwrap();
    let script = drover::script::render(&spec).unwrap();
    let id = runtime()
        .block_on(slurm.submit(&script, &SubmitOptions::default()))
        .unwrap();
    let _cancel = CancelOnDrop(id);
    let done = wait_for_state(id, "COMPLETED", Duration::from_secs(60));
    assert_eq!(done["NodeList"], "node2");
    let log = std::fs::read_to_string(logs.path().join(format!("{name}-{id}.out"))).unwrap();
    assert!(
        log.contains(&format!(
            "drover worker: job {id} on node2 (ib0 10.77.0.12)"
        )),
        "log: {log}"
    );
}

/// `job-script --check` accepts the reference job and rejects what
/// the cluster cannot run, with Slurm's own words, submitting nothing.
#[test]
fn check_asks_slurm_and_reports_its_verdict_verbatim() {
    if local_slurm("check_asks_slurm_and_reports_its_verdict_verbatim").is_none() {
        return;
    }
    let name = unique("drover-check");
    let ok = drover(&[
        "job-script",
        "--check",
        "--job-name",
        &name,
        "--cores",
        "4",
        "--memory",
        "8GB",
        "--walltime",
        "00:30:00",
        "--interface",
        "ib0",
    ]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(text.contains("to start at"), "{text}");

    let bad = drover(&[
        "job-script",
        "--check",
        "--job-name",
        &name,
        "--queue",
        "no-such-partition",
    ]);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text.contains("invalid partition specified: no-such-partition"),
        "{text}"
    );

    let big = drover(&[
        "job-script",
        "--check",
        "--job-name",
        &name,
        "--memory",
        "64GiB",
    ]);
    let text = String::from_utf8_lossy(&big.stdout);
    assert_eq!(big.status.code(), Some(1));
    assert!(
        text.contains("Requested node configuration is not available"),
        "{text}"
    );

    assert_eq!(
        jobs_named(&name),
        Vec::<String>::new(),
        "--check submitted a job"
    );
}
