//! Every Slurm release drover is tested on, read from what it printed.
//!
//! `slurm/record-fixtures` records, from a local Slurm of each release,
//! the listings and settings drover reads, for the same four jobs: one
//! that failed with exit code 3, one that completed, a held array of two
//! tasks with a comment holding `|`, and a running array of two tasks.
//! Each release's output must read into the same facts, through the same
//! readers the backends use. (22.05 writes JSON in the openapi v0.0.38
//! form; 24.11 and 26.05 in the data_parser form: see `json_shapes`.)

use super::{JobInfo, JobRef, JobState, PartitionInfo, SchedulerConfig, SiteInfo};

/// A release's recorded output, by file name.
struct Recorded {
    release: &'static str,
    squeue_fields: &'static str,
    squeue_json: &'static str,
    config: &'static str,
    partitions: &'static str,
    sacct: &'static str,
}

macro_rules! recorded {
    ($release:literal) => {
        Recorded {
            release: $release,
            squeue_fields: include_str!(concat!("fixtures/", $release, "/squeue-O.txt")),
            squeue_json: include_str!(concat!("fixtures/", $release, "/squeue.json")),
            config: include_str!(concat!("fixtures/", $release, "/scontrol-show-config.txt")),
            partitions: include_str!(concat!(
                "fixtures/",
                $release,
                "/scontrol-show-partition.txt"
            )),
            sacct: include_str!(concat!("fixtures/", $release, "/sacct.txt")),
        }
    };
}

const RELEASES: [Recorded; 3] = [recorded!("22.05"), recorded!("24.11"), recorded!("26.05")];

/// The four recorded jobs, as either listing reads them.
fn the_recorded_jobs_read_alike(release: &str, form: &str, jobs: &[JobInfo]) {
    let named = |name: &str| -> Vec<&JobInfo> {
        jobs.iter()
            .filter(|j| j.name == format!("drover-fx-{name}"))
            .collect()
    };
    let at = format!("Slurm {release}, {form}");
    let failed = named("failed");
    assert_eq!(failed.len(), 1, "{at}: {jobs:?}");
    assert_eq!(failed[0].state, JobState::Failed, "{at}");
    assert_eq!(failed[0].exit_code, Some(3), "{at}");
    assert_eq!(failed[0].reason.as_deref(), Some("NonZeroExitCode"), "{at}");
    let done = named("done");
    assert_eq!(
        (done.len(), &done[0].state),
        (1, &JobState::Completed),
        "{at}"
    );
    assert_eq!(done[0].exit_code, Some(0), "{at}");
    let held = named("held");
    assert_eq!(held.len(), 2, "{at}: one entry per task: {held:?}");
    for task in &held {
        assert_eq!(task.state, JobState::Pending, "{at}");
        assert_eq!(task.reason.as_deref(), Some("JobHeldUser"), "{at}");
        assert_eq!(task.job_id, None, "{at}: not split off its array yet");
        assert_eq!(task.comment, "drover:fx|held", "{at}");
        assert_eq!(task.exit_code, None, "{at}: a pending job has none");
    }
    let running = named("running");
    assert_eq!(running.len(), 2, "{at}: {running:?}");
    for task in &running {
        assert_eq!(task.state, JobState::Running, "{at}");
        assert!(
            task.job_id.is_some() && task.nodes.is_some(),
            "{at}: {task:?}"
        );
        assert_eq!(task.reason, None, "{at}");
    }
    let mut tasks: Vec<String> = running.iter().map(|j| j.job.to_string()).collect();
    tasks.sort();
    assert!(
        tasks[0].ends_with("_0") && tasks[1].ends_with("_1"),
        "{at}: {tasks:?}"
    );
}

#[test]
fn every_release_lists_the_same_jobs_in_squeue_fields() {
    for r in &RELEASES {
        let jobs = super::squeue_fields::parse(r.squeue_fields)
            .unwrap_or_else(|e| panic!("Slurm {}: {e:?}", r.release));
        the_recorded_jobs_read_alike(r.release, "squeue -O", &jobs);
    }
}

#[test]
fn every_release_lists_the_same_jobs_in_json() {
    for r in &RELEASES {
        let jobs = super::squeue::parse_squeue_json(r.squeue_json)
            .unwrap_or_else(|e| panic!("Slurm {}: {e}", r.release));
        the_recorded_jobs_read_alike(r.release, "squeue --json", &jobs);
    }
}

#[test]
fn every_release_says_its_version_accounting_and_limits() {
    for r in &RELEASES {
        let site = SiteInfo::parse(r.config);
        let version = site.version.clone().unwrap_or_default();
        assert!(version.starts_with(r.release), "{version}");
        assert_eq!(site.accounting_on(), Some(true), "Slurm {}", r.release);
        assert_eq!(site.max_array_size, Some(100_001), "Slurm {}", r.release);
        let config = SchedulerConfig::parse(r.config);
        assert_eq!(config.max_array_size, 100_001, "Slurm {}", r.release);
        let parts = PartitionInfo::parse_all(r.partitions);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["batch", "small", "big", "scavenger", "urgent"],
            "Slurm {}",
            r.release
        );
        assert!(
            parts[0].default && parts[0].state == "UP",
            "Slurm {}",
            r.release
        );
        assert_eq!(parts[0].total_cpus, 32, "Slurm {}", r.release);
    }
}

/// sacct, after the recording cancelled the running array: the failed
/// job, the completed one and both cancelled tasks (the held array, still
/// pending as one record `N_[0-1]`, is no single job and is left out).
#[test]
fn every_release_tells_how_the_same_jobs_ended_in_sacct() {
    for r in &RELEASES {
        let at = format!("Slurm {}", r.release);
        let fates = super::sacct::parse(r.sacct).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(fates.len(), 4, "{at}: {fates:?}");
        let failed: Vec<_> = fates
            .iter()
            .filter(|f| f.state == JobState::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{at}: {fates:?}");
        assert_eq!(
            (failed[0].exit_code, failed[0].signal),
            (Some(3), None),
            "{at}"
        );
        let done: Vec<_> = fates
            .iter()
            .filter(|f| f.state == JobState::Completed)
            .collect();
        assert_eq!(done.len(), 1, "{at}: {fates:?}");
        assert_eq!(done[0].exit_code, Some(0), "{at}");
        let cancelled: Vec<_> = fates
            .iter()
            .filter(|f| f.state == JobState::Cancelled)
            .collect();
        assert_eq!(cancelled.len(), 2, "{at}: {fates:?}");
        for (i, fate) in cancelled.iter().enumerate() {
            assert!(
                matches!(fate.job, JobRef::Task { task, .. } if task as usize == i),
                "{at}: {fate:?}"
            );
            assert_eq!(fate.cancelled_by, Some(0), "{at}: cancelled by root");
            // The batch step's SIGTERM (0:15) where it was recorded: the
            // tasks were cancelled within a second of starting, and 26.05's
            // record of those steps says 0:0 (as the job's own line does).
            assert!(
                matches!(fate.signal, Some(15) | None),
                "{at}: its batch step's signal: {fate:?}"
            );
            assert!(fate.nodes.is_some(), "{at}: it ran: {fate:?}");
        }
        for fate in &fates {
            assert!(fate.elapsed.is_some(), "{at}: {fate:?}");
        }
    }
}
