//! The floor of a scale-up: how long the same Slurm takes to start `n`
//! trivial jobs (one array, until every task runs). A pool's scale(n) is
//! measured against it, side by side in one run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Jobs named `name` in `squeue` (each array task once), in `state` if given.
pub fn squeue_count(conf: &str, name: &str, state: Option<&str>) -> usize {
    let mut cmd = Command::new("squeue");
    cmd.args(["-h", "-r", "-n", name, "-o", "%T"])
        .env("SLURM_CONF", conf);
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|s| state.is_none_or(|want| *s == want))
        .count()
}

/// The floor: one array of `n` trivial jobs, until every task runs.
pub async fn floor(conf: &str, n: usize, dir: &Path) -> f64 {
    let name = format!("drover-floor-{}", std::process::id());
    let start = Instant::now();
    let out = Command::new("sbatch")
        .args([
            "--parsable",
            &format!("--array=0-{}", n - 1),
            "-J",
            &name,
            "-c",
            "1",
            "--mem=1G",
        ])
        .arg(format!("--output={}/floor-%j.out", dir.display()))
        .args(["--wrap", "sleep 60"])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    while squeue_count(conf, &name, Some("RUNNING")) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the floor's jobs did not all start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = start.elapsed().as_secs_f64();
    Command::new("scancel")
        .args(["-n", &name])
        .env("SLURM_CONF", conf)
        .status()
        .unwrap();
    while squeue_count(conf, &name, None) > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t
}
