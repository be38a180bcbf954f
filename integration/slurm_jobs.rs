//! Worker job scripts against the real local Slurm (`slurm/local-cluster`).

mod common;

use std::time::Duration;

use common::{
    bridge_scheduler, drover, jobs_named, local_slurm, log_dir, show_job, slurm_cmd, unique,
    wait_for_state, CancelOnDrop,
};
use drover::config::{JobOptions, Memory};
use drover::slurm::{Slurm, SubmitOptions};

/// A rendered script submitted held shows exactly the request in
/// `scontrol show job`; released, its worker registers from the node, and
/// the job's log appears where the spec said, named by job id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_job_carries_the_request_and_logs_where_asked() {
    let Some(slurm) = local_slurm("held_job_carries_the_request_and_logs_where_asked") else {
        return;
    };
    let name = unique("drover-it");
    let logs = log_dir();
    let (scheduler, file) = bridge_scheduler(logs.path()).await;
    let job = JobOptions::new()
        .cores(4u32)
        .memory("8GB".parse::<Memory>().unwrap())
        .walltime("00:30:00".parse::<drover::config::Walltime>().unwrap())
        .queue("small")
        .account("drover")
        .job_name(name.clone())
        .interface("ib0")
        .log_directory(logs.path())
        .scheduler_file(file)
        .death_timeout("15".parse::<drover::config::Timeout>().unwrap());
    let held = SubmitOptions {
        hold: true,
        ..Default::default()
    };
    let id = common::submit_worker_job(&slurm, job, &held).await;
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
    // The local cluster's accounting knows the account (and enforces it).
    assert_eq!(job["Account"], "drover", "{job:?}");
    assert_eq!(
        job["StdOut"],
        format!("{}/{name}-{id}.out", logs.path().display())
    );

    slurm_cmd("scontrol", &["release", &id.to_string()]);
    scheduler
        .wait_for_workers(1, Duration::from_secs(60))
        .await
        .unwrap();
    let worker = scheduler.workers().remove(0);
    assert_eq!(worker.slurm.job_id, Some(id.get()));
    assert_eq!(
        worker.hostname, "node1",
        "the small partition holds node1 only"
    );
    assert_eq!(worker.address, common::node_address(1));
    assert_eq!(worker.cores, 4);
    assert!(
        worker.allocation_end.is_some(),
        "the worker learns when its allocation ends"
    );
    scheduler.retire(worker.id, "test done");

    let done = wait_for_state(id, "COMPLETED", Duration::from_secs(60)).await;
    assert_eq!(done["NodeList"], "node1");
    assert_eq!(done["ExitCode"], "0:0");
    let log = std::fs::read_to_string(logs.path().join(format!("{name}-{id}.out"))).unwrap();
    assert!(
        log.contains(&format!(
            "(Slurm job {id}) on node1 (ib0 {})",
            common::node_address(1)
        )),
        "log: {log}"
    );
    assert!(
        log.contains("exiting: retired by the scheduler (test done)"),
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
    // slurmrestd has no test-only submission: the check submits the job
    // to begin in a year and cancels it, and says so.
    let accepted = match common::over_rest() {
        true => "slurmrestd accepted the job (submitted as job",
        false => "to start at",
    };
    assert!(text.contains(accepted), "{text}");

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
    let refused = match common::over_rest() {
        true => "Invalid partition name specified",
        false => "invalid partition specified: no-such-partition",
    };
    assert!(text.contains(refused), "{text}");

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

/// How ended jobs ended, from accounting (`Slurm::fates`, one call for
/// all): a job that exited 3, one that completed and one cancelled by us,
/// as this release's sacct records them. Without accounting, or over
/// slurmrestd (whose accounting drover does not read yet), it says so
/// (`None`) rather than guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_tells_how_each_ended_job_ended() {
    let Some(slurm) = local_slurm("accounting_tells_how_each_ended_job_ended") else {
        return;
    };
    let mut names: Vec<String> = Vec::new();
    let mut submit = |name: &str, wrap: &str| -> drover::slurm::JobId {
        let name = unique(name);
        names.push(name.clone());
        let out = slurm_cmd(
            "sbatch",
            &["--parsable", "-J", &name, "-o", "/dev/null", "--wrap", wrap],
        );
        out.trim().split(';').next().unwrap().parse().unwrap()
    };
    let failed = submit("drover-fate-failed", "exit 3");
    let done = submit("drover-fate-done", "true");
    // Cancelled once its script runs: squeue says RUNNING while slurmd is
    // still launching it, and a step signalled then ends otherwise (SIGKILL
    // on a loaded 24.11), which is not what this case reads.
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("started");
    let cancelled = submit(
        "drover-fate-cancelled",
        &format!("touch {}; sleep 300", marker.display()),
    );
    let _guard = CancelOnDrop(cancelled);
    let start = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {cancelled}'s script did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slurm_cmd("scancel", &[&cancelled.to_string()]);
    wait_for_state(failed, "FAILED", Duration::from_secs(30)).await;
    wait_for_state(done, "COMPLETED", Duration::from_secs(30)).await;
    wait_for_state(cancelled, "CANCELLED", Duration::from_secs(30)).await;

    use drover::slurm::{JobRef, JobState};
    let jobs = [failed, done, cancelled].map(JobRef::Job);
    if common::over_rest() || !common::accounting_on() {
        assert_eq!(slurm.fates(&jobs).await.unwrap(), None);
        assert_eq!(slurm.allocations(&names, 600).await.unwrap(), None);
        return;
    }
    // slurmdbd records an end a moment after squeue shows it, and a
    // cancelled job's batch step (its signal) a moment after the job, or,
    // beside other releases' suites in CI, not at all within 90 s (24.11
    // and 26.05 once each): the ends are awaited, the step a while longer,
    // and what drover read is then held against sacct's own lines.
    let start = std::time::Instant::now();
    let fates = loop {
        let fates = slurm
            .fates(&jobs)
            .await
            .unwrap()
            .expect("the local Slurm keeps accounting");
        let ended = fates.len() == 3 && fates.iter().all(|f| !f.state.is_active());
        let step_recorded = fates
            .iter()
            .any(|f| f.job == JobRef::Job(cancelled) && f.signal.is_some());
        let waited = start.elapsed();
        if ended && (step_recorded || waited > Duration::from_secs(45)) {
            break fates;
        }
        assert!(
            waited < Duration::from_secs(90),
            "accounting did not record the three ends: {fates:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let fate =
        |job: drover::slurm::JobId| fates.iter().find(|f| f.job == JobRef::Job(job)).unwrap();
    assert_eq!(fate(failed).state, JobState::Failed);
    assert_eq!(
        (fate(failed).exit_code, fate(failed).signal),
        (Some(3), None)
    );
    assert_eq!(fate(done).state, JobState::Completed);
    assert_eq!(fate(done).exit_code, Some(0));
    assert_eq!(fate(cancelled).state, JobState::Cancelled);
    assert_eq!(fate(cancelled).cancelled_by, Some(0), "cancelled by root");
    let raw = slurm_cmd(
        "sacct",
        &[
            "-n",
            "-P",
            "-o",
            "JobID,State,ExitCode",
            "-j",
            &cancelled.to_string(),
        ],
    );
    let batch_signal = raw
        .lines()
        .find_map(|l| l.split_once(".batch|"))
        .and_then(|(_, rest)| rest.rsplit_once(':'))
        .and_then(|(_, signal)| signal.trim().parse::<i32>().ok())
        .filter(|s| *s != 0);
    assert_eq!(
        fate(cancelled).signal,
        batch_signal,
        "drover's reading against sacct's own lines:\n{raw}"
    );
    match batch_signal {
        Some(signal) => assert_eq!(signal, 15, "its batch step ended by SIGTERM:\n{raw}"),
        None => eprintln!("accounting holds no batch step signal for job {cancelled}:\n{raw}"),
    }
    for f in &fates {
        assert!(f.nodes.is_some() && f.elapsed.is_some(), "{f:?}");
    }
    // What each was allocated and for how long (the cost of a pool), in
    // one call by their names: Slurm's own times agree with its elapsed
    // time, and its billing is there (the CPUs, with no
    // TRESBillingWeights on this partition).
    // Selected by name and time, accounting trails its records by a few
    // seconds (seen here on 22.05).
    let start = std::time::Instant::now();
    let allocations = loop {
        let found = slurm
            .allocations(&names, 600)
            .await
            .unwrap()
            .expect("the local Slurm keeps accounting");
        if found.len() == 3 {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "accounting did not find the three by name: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for a in &allocations {
        let fate = fates.iter().find(|f| f.job == a.job).unwrap();
        let (Some(start), Some(end)) = (a.start_s, a.end_s) else {
            panic!("an ended job without its times: {a:?}");
        };
        assert_eq!(
            Some(end - start),
            fate.elapsed.map(|e| e.as_secs()),
            "{a:?}"
        );
        assert!(a.tres.cpus >= 1 && a.tres.memory_bytes > 0, "{a:?}");
        assert_eq!(a.tres.billing, Some(a.tres.cpus as f64), "{a:?}");
        assert_eq!(a.energy_joules, None, "this machine measures no energy");
    }
}

/// A pool's job that leaves Slurm's listing while still active (here
/// renamed, as when an administrator moves it, or a job purged while the
/// pool was away) is looked up in accounting, never in a loop. Without
/// accounting (or over slurmrestd, whose accounting drover does not read)
/// its end shows unknown at once and nothing asks again: a round costs one
/// listing. With accounting, `sacct` still knows it pending, so the pool
/// asks once a round until it gives up (`fates::PATIENCE`, a minute); this
/// case checks only that it left the listing and was replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gone_from_the_listing_is_looked_up_without_looping() {
    use drover::protocol::JobEnd;
    let Some(slurm) = local_slurm("a_job_gone_from_the_listing") else {
        return;
    };
    let logs = log_dir();
    // Held (as a person holds a job; the pool leaves such holds alone):
    // it stays pending, with no worker to say it runs.
    let spec = common::test_job("drover-gone", 1, logs.path())
        .job_extra_directives(vec!["--hold".to_string()])
        .build()
        .unwrap();
    let cluster = drover::cluster::SlurmCluster::new(spec, common::test_cluster_options(), slurm)
        .await
        .unwrap();
    cluster.scale(1);
    let job_id = || cluster.status().jobs.first().and_then(|j| j.job_id);
    let start = std::time::Instant::now();
    while job_id().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no job submitted: {:#?}",
            cluster.status()
        );
        cluster.rounds(1).await;
    }
    let first = job_id().unwrap();
    let _first = CancelOnDrop(first);
    common::until("the job listed", Duration::from_secs(30), || {
        !show_job(first).is_empty()
    })
    .await;
    slurm_cmd(
        "scontrol",
        &[
            "update",
            &format!("JobId={first}"),
            "JobName=drover-renamed",
        ],
    );
    let record = || {
        cluster
            .status()
            .jobs
            .into_iter()
            .find(|j| j.job_id == Some(first))
    };
    common::until("a replacement", Duration::from_secs(30), || {
        cluster.status().submitted >= 2
    })
    .await;
    let replacement = cluster
        .status()
        .jobs
        .iter()
        .filter_map(|j| j.job_id)
        .find(|id| *id != first)
        .unwrap();
    let _replacement = CancelOnDrop(replacement);
    if common::over_rest() || !common::accounting_on() {
        common::until("its end unknown", Duration::from_secs(30), || {
            record().is_some_and(|j| j.end == Some(JobEnd::Unknown))
        })
        .await;
        assert_eq!(
            record().unwrap().state_words(),
            "ended, state unknown (no accounting)"
        );
        let before = cluster.status().slurm_calls;
        cluster.rounds(5).await;
        let calls = cluster.status().slurm_calls - before;
        assert!(
            calls <= 6,
            "5 rounds made {calls} Slurm calls: one listing each, nothing asked again"
        );
    } else {
        // Asked about: sacct knows it pending, so its end is not known yet.
        let gone = record().expect("still in the books");
        assert_eq!(
            (gone.state.clone(), gone.end.clone()),
            (drover::slurm::JobState::Vanished, None),
            "{gone:?}"
        );
    }
    cluster.close().await.unwrap();
}
