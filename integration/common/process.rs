//! Processes a test or benchmark starts: run to success, or killed when
//! the test ends early.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use drover::client::SchedulerClient;
use drover::protocol::SchedulerFile;

/// Runs `cmd` and returns its output; panics with its stderr unless it
/// succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Kills a process the test started when the test ends, passing or not,
/// so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `drover scheduler` process on loopback with `args` (such as
/// `--heartbeat-interval 2s`), its scheduler file in `dir`, once it has
/// written the file.
pub async fn scheduler_process(dir: &Path, args: &[&str]) -> (KillOnDrop, PathBuf) {
    scheduler_process_logging(dir, args, None).await
}

/// As `scheduler_process`, its log (`RUST_LOG` filter, file) kept.
pub async fn scheduler_process_logging(
    dir: &Path,
    args: &[&str],
    log: Option<(&str, &Path)>,
) -> (KillOnDrop, PathBuf) {
    let file = dir.join("scheduler.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    cmd.args(["scheduler", "--host", "127.0.0.1"])
        .args(args)
        .arg("--scheduler-file")
        .arg(&file)
        .env("RUST_LOG", log.map_or("warn", |(filter, _)| filter))
        .stdout(Stdio::null());
    if let Some((_, path)) = log {
        cmd.stderr(std::fs::File::create(path).unwrap());
    }
    let child = KillOnDrop(cmd.spawn().unwrap());
    let start = Instant::now();
    while !file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the scheduler wrote no file"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (child, file)
}

/// A client of the scheduler `file` names, keeping up to `connections`
/// idle connections (one per simulated worker).
pub fn pooled_client(file: &Path, connections: usize) -> SchedulerClient {
    let sf = SchedulerFile::read(file).unwrap();
    let http = drover::tls::http_client_builder(sf.certificate.clone())
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    SchedulerClient::with_http(http, sf.address.clone(), sf.token.clone())
}
