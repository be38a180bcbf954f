//! Jobs that end or stall for a reason, against the fake Slurm. Jobs that
//! leave Slurm's listing before the pool sees them end: their ends come
//! from accounting in one call a round, count as what they were (a failure
//! is a failure), and without accounting they are shown unknown and asked
//! about once. Jobs Slurm holds after a failed launch: released once, then
//! replaced. What Slurm itself does is tested on the real Slurm
//! (`integration/slurm_jobs.rs`, `integration/slurm_site.rs`).

use super::tests::{options, start, until};
use crate::protocol::{JobEnd, StartupFailure};
use crate::slurm::fake::FakeSlurm;
use crate::slurm::{JobRef, JobState};

fn end_of(cluster: &super::SlurmCluster, job: JobRef) -> Option<JobEnd> {
    let status = cluster.status();
    status.jobs.iter().find(|j| j.job == job)?.end.clone()
}

#[tokio::test(start_paused = true)]
async fn ends_missed_in_the_listing_come_from_accounting_in_one_call() {
    let fake = FakeSlurm::new();
    fake.keep_accounting();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(2);
    until(&cluster, "2 jobs", || fake.active().len() == 2).await;
    let jobs = fake.active();
    // Both end and leave the listing between two looks.
    fake.start(jobs[0], "node1");
    fake.start(jobs[1], "node2");
    fake.end(jobs[0], JobState::Failed, Some(3));
    fake.end(jobs[1], JobState::Preempted, Some(0));
    fake.forget(jobs[0]);
    fake.forget(jobs[1]);
    until(&cluster, "both ends read", || {
        end_of(&cluster, jobs[0]).is_some() && end_of(&cluster, jobs[1]).is_some()
    })
    .await;
    let calls = fake.fate_calls();
    assert_eq!(calls.len(), 1, "one accounting call for both: {calls:?}");
    assert_eq!(calls[0], jobs);
    let status = cluster.status();
    let failed = status.jobs.iter().find(|j| j.job == jobs[0]).unwrap();
    assert_eq!(
        (failed.state.clone(), failed.exit_code),
        (JobState::Failed, Some(3))
    );
    assert!(matches!(failed.end, Some(JobEnd::Sacct { .. })));
    assert_eq!(failed.node.as_deref(), Some("node1"));
    let preempted = status.jobs.iter().find(|j| j.job == jobs[1]).unwrap();
    assert_eq!(preempted.state, JobState::Preempted);
    // The failure counts as one, the preemption does not.
    until(&cluster, "the failure recorded", || {
        !cluster.status().failures.is_empty()
    })
    .await;
    let failures = cluster.status().failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        matches!(&failures[0], StartupFailure::JobEnded { job, state, .. } if *job == jobs[0] && *state == JobState::Failed),
        "{failures:?}"
    );
    // Known ends are not asked about again; the pool replaced both.
    cluster.rounds(5).await;
    assert_eq!(fake.fate_calls().len(), 1);
    assert_eq!(fake.active().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn without_accounting_a_job_gone_from_the_listing_is_unknown_and_asked_about_once() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(1);
    until(&cluster, "a job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    fake.start(job, "node1");
    fake.forget(job);
    until(&cluster, "its end marked unknown", || {
        end_of(&cluster, job) == Some(JobEnd::Unknown)
    })
    .await;
    let shown = cluster
        .status()
        .jobs
        .into_iter()
        .find(|j| j.job == job)
        .unwrap();
    assert_eq!(shown.state_words(), "ended, state unknown (no accounting)");
    cluster.rounds(5).await;
    assert_eq!(
        fake.fate_calls(),
        vec![vec![job]],
        "asked once, nothing loops"
    );
    assert!(
        cluster.status().failures.is_empty(),
        "an unknown end is no failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_accounting_has_no_record_of_is_given_up_on_after_a_while() {
    let fake = FakeSlurm::new();
    fake.keep_accounting();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(1);
    until(&cluster, "a job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    // Lost by Slurm while pending: accounting keeps no end for it.
    fake.start(job, "node1");
    fake.forget(job);
    fake.set_fate(crate::slurm::JobFate {
        job,
        state: JobState::Running,
        cancelled_by: None,
        exit_code: None,
        signal: None,
        reason: None,
        elapsed: None,
        max_rss: None,
        nodes: None,
    });
    let start = tokio::time::Instant::now();
    // Rounds of 1 s: longer than `until` waits.
    for _ in 0..200 {
        if end_of(&cluster, job) == Some(JobEnd::Unrecorded) {
            break;
        }
        cluster.rounds(1).await;
    }
    assert_eq!(end_of(&cluster, job), Some(JobEnd::Unrecorded));
    assert!(start.elapsed() >= super::fates::PATIENCE);
    assert!(fake.fate_calls().len() > 1, "asked again while it waited");
    let asked = fake.fate_calls().len();
    cluster.rounds(5).await;
    assert_eq!(fake.fate_calls().len(), asked, "no more asking");
}

#[tokio::test(start_paused = true)]
async fn a_job_held_after_a_failed_launch_is_released_once_then_replaced() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(1);
    until(&cluster, "a job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    fake.start(job, "node1");
    fake.hold_after_failed_launch(job);
    until(&cluster, "the job released", || !fake.released().is_empty()).await;
    assert_eq!(fake.released(), vec![vec![job]]);
    cluster.rounds(3).await;
    assert_eq!(fake.submissions().len(), 1, "a released job still counts");
    assert!(fake.cancelled().is_empty());
    // Held again: cancelled, and a replacement goes.
    fake.hold_after_failed_launch(job);
    until(&cluster, "a replacement", || fake.submissions().len() == 2).await;
    assert_eq!(fake.cancelled(), vec![vec![job]]);
    assert_eq!(fake.released().len(), 1, "released once only");
}

#[tokio::test(start_paused = true)]
async fn a_held_job_is_replaced_where_the_backend_cannot_release() {
    let fake = FakeSlurm::new();
    fake.cannot_release();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(1);
    until(&cluster, "a job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    fake.hold_after_failed_launch(job);
    until(&cluster, "a replacement", || fake.submissions().len() == 2).await;
    assert_eq!(fake.cancelled(), vec![vec![job]]);
    assert!(
        cluster.status().failures.is_empty(),
        "a hold is no start-up failure"
    );
}

/// The `--mem` of the latest submission.
fn last_mem(fake: &FakeSlurm) -> String {
    let subs = fake.submissions();
    subs.last().and_then(|s| s.mem.clone()).unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_job_that_ended_out_of_memory_makes_the_next_jobs_ask_for_more_until_slurm_refuses() {
    let fake = FakeSlurm::new();
    // No worker registers here, so each end is a start-up failure too.
    let mut o = options();
    o.max_startup_failures = 10;
    let (cluster, _dir) = start(&fake, o).await;
    cluster.scale(2);
    until(&cluster, "2 jobs", || fake.active().len() == 2).await;
    let first = last_mem(&fake);
    assert_eq!(first, "1G", "the spec's memory");
    let jobs = fake.active();
    fake.start(jobs[0], "node1");
    fake.start(jobs[1], "node2");
    // Both end OUT_OF_MEMORY in one round: the jobs grow once, not twice.
    fake.end(jobs[0], JobState::OutOfMemory, Some(0));
    fake.end(jobs[1], JobState::OutOfMemory, Some(0));
    until(&cluster, "replacements", || {
        fake.in_state(JobState::Pending).len() == 2
    })
    .await;
    assert_eq!(last_mem(&fake), "2G");
    let grown = cluster.status().memory_growth.expect("grown");
    assert_eq!(
        (grown.from.as_str(), grown.to.as_str(), grown.times),
        ("1G", "2G", 1)
    );
    assert!(cluster.job_script().contains("#SBATCH --mem=2G"));
    // Slurm would not take twice that: the jobs stay at 2G, and say why.
    fake.refuse_tests(Some("Requested node configuration is not available"));
    let grown_jobs = fake.active();
    fake.start(grown_jobs[0], "node1");
    fake.end(grown_jobs[0], JobState::OutOfMemory, Some(0));
    until(&cluster, "growth stopped", || {
        cluster
            .status()
            .memory_growth
            .is_some_and(|g| g.stopped.is_some())
    })
    .await;
    until(&cluster, "a replacement", || {
        fake.in_state(JobState::Pending).len() == 2
    })
    .await;
    assert_eq!(last_mem(&fake), "2G");
    let line = cluster.status().memory_growth.unwrap().to_string();
    assert!(
        line.contains("jobs ask 2G (grown from 1G after jobs ended OUT_OF_MEMORY, 1 time)")
            && line.contains("Requested node configuration is not available"),
        "{line}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_job_memory_growth_off_an_out_of_memory_end_changes_nothing() {
    let fake = FakeSlurm::new();
    let mut o = options();
    o.job_memory_growth = crate::config::MemoryGrowth::OFF;
    let (cluster, _dir) = start(&fake, o).await;
    cluster.scale(1);
    until(&cluster, "a job", || fake.active().len() == 1).await;
    let job = fake.active()[0];
    fake.start(job, "node1");
    fake.end(job, JobState::OutOfMemory, Some(0));
    until(&cluster, "a replacement", || fake.submissions().len() == 2).await;
    assert_eq!(last_mem(&fake), "1G");
    assert_eq!(cluster.status().memory_growth, None);
}
