//! Worker agents on the real local Slurm: submitted as jobs, and started as
//! `srun` steps inside one allocation next to a scheduler step.

mod common;

use std::time::Duration;

use common::{bridge_scheduler, local_slurm, log_dir, unique, wait_for_state, CancelOnDrop};
use drover::config::{JobOptions, Timeout};
use drover::protocol::{WorkerInfo, WorkerState};
use drover::slurm::{Slurm, SubmitOptions};

/// Agents submitted as jobs register from both nodes with their ib0
/// addresses and the job ids Slurm gave them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_register_from_both_nodes_with_ib0_addresses_and_job_ids() {
    let Some(slurm) = local_slurm("jobs_register_from_both_nodes_with_ib0_addresses_and_job_ids")
    else {
        return;
    };
    let logs = log_dir();
    let (scheduler, file) = bridge_scheduler(logs.path()).await;
    let mut submitted = Vec::new();
    for node in ["node1", "node2"] {
        let job = JobOptions::new()
            .job_name(unique("drover-reg"))
            .interface("ib0")
            .log_directory(logs.path())
            .scheduler_file(file.clone())
            .death_timeout("15".parse::<Timeout>().unwrap())
            .job_extra_directives(vec![format!("--nodelist={node}")]);
        let id = common::submit_worker_job(&slurm, job, &SubmitOptions::default()).await;
        submitted.push((node, id, CancelOnDrop(id)));
    }
    scheduler
        .wait_for_workers(2, Duration::from_secs(60))
        .await
        .unwrap();
    let workers = scheduler.workers();
    for (node, id, _) in &submitted {
        let w: &WorkerInfo = workers
            .iter()
            .find(|w| w.slurm.job_id == Some(id.get()))
            .unwrap_or_else(|| panic!("job {id} did not register: {workers:?}"));
        assert_eq!(&w.hostname, node);
        let expected = common::node_address(if *node == "node1" { 1 } else { 2 });
        assert_eq!(w.address, expected);
        assert_eq!(w.name, id.to_string());
        assert_eq!(w.state, WorkerState::Running);
    }
    for w in &workers {
        scheduler.retire(w.id, "test done");
    }
    for (_, id, _) in &submitted {
        wait_for_state(*id, "COMPLETED", Duration::from_secs(30)).await;
    }
}

/// The manual setup: one allocation, a scheduler in one `srun` step and
/// workers in another, joined through the scheduler file. When the
/// scheduler step ends, the workers leave by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_and_workers_as_srun_steps_of_one_allocation() {
    let Some(slurm) = local_slurm("scheduler_and_workers_as_srun_steps_of_one_allocation") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("drover-steps")
        .tempdir()
        .unwrap();
    let d = dir.path().display();
    let drover = env!("CARGO_BIN_EXE_drover");
    let script = format!(
        r#"#!/bin/bash
#SBATCH --job-name=drover-steps
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=200M
#SBATCH --time=5
#SBATCH --output={d}/job.out
set -u
F={d}/scheduler.json
srun --nodes=1 --ntasks=1 --nodelist=node1 --exact {drover} scheduler --interface ib0 --scheduler-file "$F" &
sched=$!
for _ in $(seq 100); do [ -s "$F" ] && break; sleep 0.1; done
srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --exact {drover} worker --scheduler-file "$F" --interface ib0 --death-timeout 3 &
workers=$!
for _ in $(seq 150); do
  n=$({drover} status --scheduler-file "$F" --json | grep -c '"state": "running"')
  [ "$n" -ge 2 ] && break
  sleep 0.2
done
{drover} status --scheduler-file "$F" --json > {d}/status.json
{drover} status --scheduler-file "$F"
kill $sched
wait $sched
wait $workers
echo "workers step exit: $?"
"#
    );
    let id = slurm
        .submit(&script, &SubmitOptions::default())
        .await
        .unwrap();
    let _cancel = CancelOnDrop(id);
    wait_for_state(id, "COMPLETED", Duration::from_secs(90)).await;
    let log = std::fs::read_to_string(dir.path().join("job.out")).unwrap_or_default();
    let status = std::fs::read_to_string(dir.path().join("status.json"))
        .unwrap_or_else(|_| panic!("no status.json; job log:\n{log}"));
    let workers: Vec<WorkerInfo> = serde_json::from_str(&status).unwrap();
    assert_eq!(workers.len(), 2, "{status}\n{log}");
    let mut hosts: Vec<(&str, &str)> = workers
        .iter()
        .map(|w| (w.hostname.as_str(), w.address.as_str()))
        .collect();
    hosts.sort();
    assert_eq!(hosts, [("node1", "10.77.0.11"), ("node2", "10.77.0.12")]);
    for w in &workers {
        assert_eq!(w.slurm.job_id, Some(id.get()));
        assert_eq!(w.slurm.step_id, Some(1), "workers run in the second step");
        assert!(w.name.starts_with(&format!("{id}.1/")), "{}", w.name);
    }
    // With the scheduler gone, the workers' step ended by their death timeout.
    assert!(log.contains("workers step exit: 1"), "{log}");
    eprintln!("{log}");
}
