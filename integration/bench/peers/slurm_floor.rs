//! Slurm's own floor for a scale-up benchmark: how fast this Slurm starts N
//! trivial jobs (one CPU, 100 MB, as pool jobs ask), submitted as one
//! array, or paced: arrays one scheduling pass deep, each submitted once
//! every job of the previous one has been through a pass (started, or
//! pending with a reason), the rule drover follows (src/cluster/pace.rs).
//! A job counts once its own process has started (it leaves a mark), as a
//! worker counts once its agent has registered: squeue says RUNNING
//! before the node has launched the job.

use std::process::Command;
use std::time::{Duration, Instant};

use drover::slurm::SchedulerConfig;

/// `squeue -h` with `args`, as text.
pub fn squeue(conf: &str, args: &[&str]) -> String {
    let out = Command::new("squeue")
        .arg("-h")
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CPUs of every node together.
pub fn total_cpus(conf: &str) -> usize {
    let out = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%N %c"])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((node, cpus)) = line.split_once(' ') {
            seen.insert(node.to_string(), cpus.trim().parse::<usize>().unwrap_or(0));
        }
    }
    seen.values().sum()
}

/// The floor's measurements on one Slurm.
pub struct Floor {
    conf: String,
    pub config: SchedulerConfig,
    name: String,
    marks: tempfile::TempDir,
}

impl Floor {
    pub fn new(conf: &str) -> Floor {
        let out = Command::new("scontrol")
            .args(["show", "config"])
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        Floor {
            conf: conf.into(),
            config: SchedulerConfig::parse(&String::from_utf8_lossy(&out.stdout)),
            name: format!("drover-floor-{}", std::process::id()),
            marks: tempfile::Builder::new()
                .prefix("drover-floor")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn conf(&self) -> &str {
        &self.conf
    }

    /// Waits until a new submission gets a pass of its own: Slurm runs an
    /// event-driven pass for batch jobs at most once per
    /// `batch_sched_delay`, and the last cleanup's cancellations had one.
    /// Every contender starts from this same state.
    pub fn settle(&self) {
        std::thread::sleep(self.config.batch_sched_delay + Duration::from_secs(1));
    }

    /// Submits an array of `n`; returns its id.
    fn submit(&self, n: usize) -> String {
        let out = Command::new("sbatch")
            .args(["--parsable", "-J", &self.name, "-c", "1", "--mem=100M"])
            .args(["-o", "/dev/null", "-e", "/dev/null"])
            .arg(format!("--array=0-{}", n - 1))
            .arg("--wrap")
            .arg(format!(
                "touch {}/$SLURM_ARRAY_JOB_ID-$SLURM_ARRAY_TASK_ID; exec sleep 600",
                self.marks.path().display()
            ))
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sbatch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// How many jobs have started their process.
    fn running(&self) -> usize {
        std::fs::read_dir(self.marks.path()).unwrap().count()
    }

    /// Whether any job of `array` waits unconsidered (reason `None`).
    fn unconsidered(&self, array: &str) -> bool {
        squeue(&self.conf, &["-j", array, "-t", "PD", "-o", "%r"])
            .lines()
            .any(|r| r.trim() == "None")
    }

    fn wait_running(&self, n: usize, start: Instant) {
        while self.running() < n {
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "the floor's jobs did not all start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn clean(&self) {
        Command::new("scancel")
            .args(["-n", &self.name])
            .env("SLURM_CONF", &self.conf)
            .status()
            .unwrap();
        while !squeue(&self.conf, &["-n", &self.name, "-o", "%i"]).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        for mark in std::fs::read_dir(self.marks.path()).unwrap() {
            std::fs::remove_file(mark.unwrap().path()).unwrap();
        }
    }

    /// Seconds until one array of `n` all runs.
    pub fn array(&self, n: usize) -> f64 {
        let start = Instant::now();
        self.submit(n);
        self.wait_running(n, start);
        let t = start.elapsed().as_secs_f64();
        self.clean();
        t
    }

    /// Seconds until `n` all run, submitted in arrays one pass deep, each
    /// once the previous one has been through a pass.
    pub fn paced(&self, n: usize) -> f64 {
        let chunk = (self.config.pass_size().min(self.config.array_limit()) as usize).max(1);
        let start = Instant::now();
        let mut sent = 0;
        while sent < n {
            let k = chunk.min(n - sent);
            let array = self.submit(k);
            sent += k;
            if sent < n {
                let since = Instant::now();
                while self.unconsidered(&array) && since.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        self.wait_running(n, start);
        let t = start.elapsed().as_secs_f64();
        self.clean();
        t
    }
}

/// What it costs a pool to list its own jobs while `others` jobs of
/// someone else wait in the queue (held, so they take nothing): drover's
/// listing (run, parsed, filtered by the pool's name), and `squeue --json`
/// alone. Returns (drover ms, --json ms, --json bytes), medians of 5.
pub fn listing_cost(conf: &str, others: usize) -> (f64, f64, usize) {
    let name = format!("drover-bench-others-{}", std::process::id());
    for _ in 0..others {
        let ok = Command::new("sbatch")
            .args([
                "--hold",
                "-J",
                &name,
                "-c",
                "1",
                "--mem=10M",
                "-o",
                "/dev/null",
            ])
            .args(["--wrap", "true"])
            .env("SLURM_CONF", conf)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "sbatch --hold failed");
    }
    let slurm = drover::slurm::SlurmCli::new().with_conf(conf);
    let rt = super::common::runtime();
    let (mut ours, mut json, mut bytes) = (vec![], vec![], 0);
    for _ in 0..5 {
        let t = Instant::now();
        let jobs = rt
            .block_on(drover::slurm::Slurm::jobs(
                &slurm,
                Some("drover-bench-no-such-pool"),
            ))
            .unwrap();
        assert!(jobs.is_empty());
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let out = Command::new("squeue")
            .arg("--json")
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        json.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = out.stdout.len();
    }
    Command::new("scancel")
        .args(["-n", &name])
        .env("SLURM_CONF", conf)
        .status()
        .unwrap();
    while !squeue(conf, &["-n", &name, "-o", "%i"]).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        super::common::median(ours),
        super::common::median(json),
        bytes,
    )
}
