//! What a pool waits for, on the real local Slurm: a pool's job held
//! behind another job shows when Slurm expects to start it (its backfill
//! scheduler's estimate, as `squeue --start` shows it), in the pool's
//! status and in `drover status`. Run on both backends
//! (`DROVER_SLURM_API=rest` for slurmrestd).

mod common;

use std::time::Duration;

use common::{exclusive, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job};
use drover::cluster::SlurmCluster;
use drover::config::Walltime;
use drover::slurm::JobState;

/// Cancels its job when dropped.
struct Blocker(String);

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("scancel")
            .arg(&self.0)
            .env("SLURM_CONF", common::slurm_conf())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_held_behind_another_shows_when_slurm_expects_to_start_it() {
    let Some(slurm) = local_slurm("a_job_held_behind_another_shows") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    // The whole of `small` (one node) for 3 minutes.
    let id = slurm_cmd(
        "sbatch",
        &[
            "--parsable",
            "-p",
            "small",
            "--exclusive",
            "-t",
            "3",
            "-J",
            &common::unique("drover-blocker"),
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 300",
        ],
    );
    let blocker = Blocker(id.trim().to_string());
    common::poll_until("the blocker to run", Duration::from_secs(30), || {
        let out = slurm_cmd("squeue", &["-h", "-j", &blocker.0, "-o", "%T"]);
        (out.trim() == "RUNNING").then_some(())
    })
    .await;
    let started = std::process::Command::new("squeue")
        .args(["-h", "-j", &blocker.0, "-o", "%S"])
        .env("SLURM_CONF", common::slurm_conf())
        .env("SLURM_TIME_FORMAT", "%s")
        .output()
        .unwrap();
    let started: u64 = String::from_utf8_lossy(&started.stdout)
        .trim()
        .parse()
        .unwrap();
    let spec = test_job("drover-waits", 1, logs.path())
        .queue("small")
        .walltime("00:02:00".parse::<Walltime>().unwrap())
        .build()
        .unwrap();
    let cluster = SlurmCluster::new(spec, test_cluster_options(), slurm)
        .await
        .unwrap();
    cluster.scale(1);
    // Slurm's backfill scheduler estimates within its interval (30 s).
    let job = common::poll_until(
        "an expected start for the waiting job",
        Duration::from_secs(90),
        || {
            let status = cluster.status();
            let job = status.jobs.first()?.clone();
            job.expected_start.is_some().then_some(job)
        },
    )
    .await;
    assert_eq!(job.state, JobState::Pending, "{job:?}");
    let expected = job.expected_start.unwrap();
    // When the blocker's time limit ends.
    assert!(
        expected.abs_diff(started + 180) <= 5,
        "expected start {expected}, the blocker started at {started} for 3 minutes"
    );
    let words = job.waiting_words(drover::protocol::unix_ms());
    assert!(words.contains("expected to start in "), "{words}");
    // drover status shows it in the job's row.
    let file = cluster.scheduler_file().to_path_buf();
    let out = common::drover(&["status", "--scheduler-file", file.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("expected to start in "), "{table}");
    // And so does the job's row on the status page, in a browser: the row
    // carries Slurm's estimate as a time, the page's script words it.
    if let Some(browser) = common::browser::chromium() {
        let url = common::browser::login_url(&file, "/ui");
        let dom = common::browser::headless(
            &browser,
            &url,
            &["--virtual-time-budget=3000", "--dump-dom"],
        );
        let row = dom
            .split(&format!("data-job=\"{}\"", job.job))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("job {} not on the page: {dom}", job.job));
        assert!(row.contains("expected to start in "), "{row}");
    }
    drop(blocker);
    cluster.close().await.unwrap();
}
