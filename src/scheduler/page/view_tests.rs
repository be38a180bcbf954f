use super::*;
use crate::protocol::StartupFailure;

fn worker(name: &str, job_id: u64, allocation_end: u64) -> WorkerInfo {
    serde_json::from_value(serde_json::json!({
        "id": 1, "name": name, "slurm": {"job_id": job_id}, "hostname": "node1",
        "address": "10.77.0.2", "cores": 1, "memory_bytes": 1, "allocation_end": allocation_end,
        "state": "running", "registered_at_ms": 0, "last_heartbeat_ms": 0,
    }))
    .unwrap()
}

fn job(job: &str, state: &str, reason: Option<&str>, workers: Vec<WorkerInfo>) -> JobStatus {
    serde_json::from_value(serde_json::json!({
        "job": job, "job_id": null, "state": state, "reason": reason, "node": null,
        "exit_code": if state == "FAILED" { Some(3) } else { None }, "workers": workers,
        "log": format!("/logs/w-{job}.out"), "action": null, "age_s": 125,
    }))
    .unwrap()
}

fn status(jobs: Vec<JobStatus>) -> ClusterStatus {
    serde_json::from_value(serde_json::json!({
        "cluster_id": "abcd1234", "job_name": "w", "target_workers": 3, "target_jobs": 3,
        "processes": 1, "registered": 1, "jobs": jobs, "last_error": null,
        "failures": [], "submitted": 3, "slurm_calls": 9, "log_directory": "/logs",
        "held_back": {"submitting": 0, "wanted": 1, "reasons": [{"kind": "slurm_cap", "at": 2,
            "waiting": 1, "next_try_s": 4, "slurm": "QOSMaxSubmitJobPerUserLimit"}]},
    }))
    .unwrap()
}

#[test]
fn jobs_show_state_reason_age_and_time_left() {
    let now_ms = 1_000_000_000;
    let c = status(vec![
        job(
            "7",
            "RUNNING",
            None,
            vec![worker("w1", 7, now_ms / 1000 + 3600 + 62)],
        ),
        job("8", "PENDING", Some("JobHeldUser"), Vec::new()),
    ]);
    let v = view(Some(&c), &[], TaskCounts::default(), Some(12.0), now_ms);
    let running = &v.jobs[0];
    assert_eq!((running.class, running.page.as_str()), ("running", "w1"));
    assert_eq!(
        (running.age.as_str(), running.time_left.as_str()),
        ("2m05s", "1h01m")
    );
    let pending = &v.jobs[1];
    assert_eq!(
        (pending.class, pending.reason.as_str()),
        ("pending", "JobHeldUser")
    );
    assert_eq!(
        (pending.page.as_str(), pending.time_left.as_str()),
        ("8", "")
    );
    let pool = v.pool.as_ref().unwrap();
    assert_eq!(pool.summary, "1 PENDING (JobHeldUser), 1 RUNNING");
    assert_eq!(
        pool.notes,
        [
            "submitting 0 of 1 jobs now: Slurm's limit holds the pool at 2 jobs, 1 more wait; \
          trying again in 4s (Slurm: QOSMaxSubmitJobPerUserLimit)"
        ]
    );
    assert_eq!(v.rate.as_deref(), Some("12.0 tasks/min"));
}

#[test]
fn errors_are_startup_failures_with_their_logs_then_jobs_that_failed() {
    let mut c = status(vec![job("9", "FAILED", None, vec![worker("w2", 9, 0)])]);
    c.failures.push(StartupFailure::JobEnded {
        job: "6".parse().unwrap(),
        state: JobState::Failed,
        exit_code: Some(1),
        log_tail: "python: not found".into(),
    });
    let v = view(Some(&c), &[], TaskCounts::default(), None, 0);
    assert_eq!(v.errors.len(), 2);
    assert!(v.errors[0]
        .title
        .contains("job 6 ended FAILED with exit code 1"));
    assert_eq!(v.errors[0].details, "python: not found");
    assert_eq!(v.errors[0].page.as_deref(), Some("6"));
    assert_eq!(v.errors[1].title, "job 9 ended FAILED with exit code 3");
    assert_eq!(v.jobs[0].class, "failed");
}

#[test]
fn a_scheduler_without_a_pool_lists_its_workers() {
    let v = view(None, &[worker("w5", 42, 0)], TaskCounts::default(), None, 0);
    assert!(v.pool.is_none() && v.jobs.is_empty());
    assert_eq!(
        (v.workers[0].name.as_str(), v.workers[0].job.as_str()),
        ("w5", "42")
    );
}

#[test]
fn the_live_part_escapes_what_it_shows() {
    let c = status(vec![job(
        "8",
        "PENDING",
        Some("<script>x</script>"),
        Vec::new(),
    )]);
    let v = view(Some(&c), &[], TaskCounts::default(), None, 0);
    let html = super::super::render::live(&v);
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>x"), "{html}");
    assert!(html.contains("data-job=\"8\""), "{html}");
}

#[test]
fn durations_read_short() {
    assert_eq!(duration(42), "42s");
    assert_eq!(duration(185), "3m05s");
    assert_eq!(duration(3720), "1h02m");
}

#[test]
fn a_dask_pool_links_to_dasks_own_dashboard() {
    let mut c = status(Vec::new());
    c.dask = Some(crate::protocol::DaskStatus {
        address: "tls://10.77.0.1:8786".into(),
        http: "http://10.77.0.1:8787/".into(),
        scheduler_file: "/tmp/dask.json".into(),
        workers: Some(2),
    });
    let v = view(Some(&c), &[], TaskCounts::default(), None, 0);
    assert_eq!(
        v.dask_dashboard.as_deref(),
        Some("http://10.77.0.1:8787/status")
    );
}

#[test]
fn a_pool_s_notes_say_how_often_it_was_preempted_and_how_its_memory_grew() {
    let mut c = status(Vec::new());
    c.held_back = None;
    let quiet = view(Some(&c), &[], TaskCounts::default(), None, 0);
    assert!(quiet.pool.unwrap().notes.is_empty());
    c.preemptions = 3;
    c.recent_preemptions = 2;
    c.memory_growth = Some(crate::protocol::MemoryGrowthStatus {
        from: "256M".into(),
        to: "512M".into(),
        times: 1,
        stopped: None,
    });
    let v = view(Some(&c), &[], TaskCounts::default(), None, 0);
    assert_eq!(
        v.pool.unwrap().notes,
        [
            "preempted: 3 times, 2 in the last hour",
            "memory: jobs ask 512M (grown from 256M after jobs ended OUT_OF_MEMORY, 1 time)"
        ]
    );
}

#[test]
fn rows_carry_absolute_times_so_only_the_clock_line_moves_between_refreshes() {
    let now_ms = 1_000_000_000;
    let mut pending = job("8", "PENDING", Some("Resources"), Vec::new());
    pending.expected_start = Some(now_ms / 1000 + 90);
    pending.submitted_s = Some(now_ms / 1000 - 30);
    let mut running = job(
        "7",
        "RUNNING",
        None,
        vec![worker("w1", 7, now_ms / 1000 + 600)],
    );
    running.submitted_s = Some(now_ms / 1000 - 300);
    let c = status(vec![running, pending]);
    let live = |at_ms| {
        let v = view(Some(&c), &[], TaskCounts::default(), None, at_ms);
        super::super::render::live(&v)
    };
    let (before, after) = (live(now_ms), live(now_ms + 7_000));
    let changed: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].0.contains("id=\"updated\""), "{changed:?}");
    for attribute in [
        format!("data-since=\"{}\"", now_ms / 1000 - 300),
        format!("data-until=\"{}\"", now_ms / 1000 + 600),
        format!("data-expected=\"{}\"", now_ms / 1000 + 90),
    ] {
        assert!(before.contains(&attribute), "{attribute} in {before}");
    }
    // The worker's page, drawn once, words it for people.
    let v = view(Some(&c), &[], TaskCounts::default(), None, now_ms);
    assert_eq!(v.jobs[1].waiting, "Resources; expected to start in 1m30s");
    assert_eq!(v.jobs[1].reason, "Resources");
}
