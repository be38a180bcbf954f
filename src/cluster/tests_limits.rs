//! A pool against Slurm's limits, on the fake Slurm with time under test
//! control: a per-user cap on submitted jobs, and arrays larger than the
//! site takes. That Slurm itself refuses so is shown by
//! `integration/slurm_site.rs`.

use super::tests::{options, start, until};
use crate::protocol::{HoldReason, PoolPhase};
use crate::slurm::fake::FakeSlurm;
use crate::slurm::SchedulerConfig;

#[tokio::test(start_paused = true)]
async fn a_cap_of_4_takes_4_of_8_waits_quietly_and_takes_the_rest_once_lifted() {
    let fake = FakeSlurm::new();
    fake.set_submit_cap(Some(4));
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(8);
    until(&cluster, "4 jobs under the cap", || {
        fake.active().len() == 4
    })
    .await;
    let learned = fake.refused();
    // An array of 8 was refused whole; halves found the room: 8, 4 (taken), 4, 2, 1.
    assert!(learned <= 4, "{learned} refusals to find the cap");
    let status = cluster.status();
    let held = status.held_back.clone().unwrap();
    assert!(
        matches!(
            &held.reasons[..],
            [HoldReason::SlurmCap { at: 4, waiting: 4, slurm, .. }]
                if slurm.contains("QOSMaxSubmitJobPerUserLimit")
        ),
        "{held:?}"
    );
    assert!(
        status.failures.is_empty() && status.phase == PoolPhase::Running,
        "{status:?}"
    );
    // A minute at the cap: the tries come at 1, 2, 4, 8, 16 and 32 s.
    cluster.rounds(60).await;
    let waiting = fake.refused() - learned;
    assert!(
        (4..=7).contains(&waiting),
        "{waiting} tries in a minute at the cap"
    );
    assert_eq!(cluster.status().limit_refusals, fake.refused());
    fake.set_submit_cap(None);
    until(&cluster, "all 8 once the cap is lifted", || {
        fake.active().len() == 8
    })
    .await;
    assert!(cluster.status().held_back.is_none());
}

#[tokio::test(start_paused = true)]
async fn arrays_larger_than_the_site_takes_are_split_and_the_size_learned() {
    // As over slurmrestd: the settings do not say MaxArraySize.
    let fake = FakeSlurm::new();
    fake.set_max_array(Some(5));
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(12);
    until(&cluster, "12 jobs", || fake.active().len() == 12).await;
    let arrays: Vec<u32> = fake.submissions().iter().filter_map(|s| s.array).collect();
    assert!(arrays.iter().all(|n| *n <= 5), "{arrays:?}");
    assert_eq!(arrays.iter().sum::<u32>(), 12, "{arrays:?}");
    // 12 and 6 refused; then arrays of 3 without another refusal.
    assert_eq!(fake.refused(), 2);
    assert!(cluster.status().failures.is_empty());
}

#[tokio::test(start_paused = true)]
async fn max_array_size_from_slurms_settings_splits_arrays_with_no_refusal() {
    let fake = FakeSlurm::new();
    fake.set_max_array(Some(5));
    fake.set_scheduler(SchedulerConfig {
        max_array_size: 5,
        ..Default::default()
    });
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale(12);
    until(&cluster, "12 jobs", || {
        fake.pass();
        fake.active().len() == 12
    })
    .await;
    let arrays: Vec<u32> = fake.submissions().iter().filter_map(|s| s.array).collect();
    assert_eq!(arrays, [5, 5, 2]);
    assert_eq!(fake.refused(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_account_slurm_refuses_fails_the_start_before_anything_is_submitted() {
    let fake = FakeSlurm::new();
    fake.refuse_tests(Some(
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = crate::config::JobOptions::new()
        .job_name("t")
        .account("nosuch")
        .log_directory(dir.path())
        .drover_bin("/usr/bin/drover")
        .build()
        .unwrap();
    let e = super::SlurmCluster::new(spec, options(), fake.clone())
        .await
        .err()
        .expect("the start fails");
    let words = e.to_string();
    assert!(
        words.contains("Invalid account or account/partition combination"),
        "{words}"
    );
    assert_eq!(crate::exit::ExitStatus::exit_code(&e), crate::exit::USAGE);
    assert!(fake.submissions().is_empty());
    // A limit is no verdict on the job: the pool starts.
    fake.refuse_tests(Some("sbatch: error: QOSMaxSubmitJobPerUserLimit"));
    let (_cluster, _dir) = start(&fake, options()).await;
}

#[tokio::test(start_paused = true)]
async fn unchecked_at_the_start_a_refused_job_is_asked_at_its_first_submission() {
    // A cluster made to look at its job script starts whatever its queue;
    // its first scale is then refused with Slurm's words, nothing submitted.
    let fake = FakeSlurm::new();
    fake.refuse_tests(Some("sbatch: error: invalid partition specified: regular"));
    let mut o = options();
    o.check_jobs = false;
    let (cluster, _dir) = start(&fake, o).await;
    cluster.scale(2);
    let e = cluster
        .wait_for_workers(2, std::time::Duration::from_secs(30))
        .await
        .expect_err("the wait fails");
    let words = e.to_string();
    assert!(
        words.contains("invalid partition specified: regular"),
        "{words}"
    );
    assert!(fake.submissions().is_empty());
    // Once Slurm takes the job, the pool submits without asking again.
    let fake2 = FakeSlurm::new();
    let mut o = options();
    o.check_jobs = false;
    let (cluster, _dir) = start(&fake2, o).await;
    cluster.scale(2);
    until(&cluster, "2 jobs", || fake2.active().len() == 2).await;
    fake2.refuse_tests(Some("sbatch: error: would be refused now"));
    cluster.scale(3);
    until(&cluster, "3 jobs", || fake2.active().len() == 3).await;
}
