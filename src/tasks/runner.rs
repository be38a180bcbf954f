//! Runs one task on a worker: its program with its environment, standard
//! output kept (up to a bound) as its result, standard error kept at its
//! end and written to its log file, killed at its time limit.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Assignment, TaskOutput};

/// Standard output kept inline, in bytes; the rest goes to the log file.
pub const STDOUT_LIMIT: usize = 1 << 20;
/// The end of standard error kept inline, in bytes.
pub const STDERR_TAIL: usize = 16 << 10;

/// Reads `r` to its end; keeps the first `keep` bytes (or the last, with
/// `tail`), and returns them with the whole.
async fn drain(mut r: impl AsyncRead + Unpin, keep: usize, tail: bool) -> (Vec<u8>, Vec<u8>, bool) {
    let mut all = Vec::new();
    let _ = r.read_to_end(&mut all).await;
    let cut = all.len() > keep;
    let kept = if !cut {
        all.clone()
    } else if tail {
        all[all.len() - keep..].to_vec()
    } else {
        all[..keep].to_vec()
    };
    (kept, all, cut)
}

/// Runs `a`, writing its logs under `log_dir` when given
/// (`task-ID-ATTEMPT.err`, and `.out` when the output outgrew the bound).
pub async fn run(a: &Assignment, log_dir: Option<&Path>) -> TaskOutput {
    let start = Instant::now();
    let mut cmd = tokio::process::Command::new(&a.argv[0]);
    cmd.args(&a.argv[1..])
        .envs(&a.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &a.cwd {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return TaskOutput {
                error: Some(format!("cannot start `{}`: {e}", a.argv[0])),
                millis: start.elapsed().as_millis() as u64,
                ..Default::default()
            }
        }
    };
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let io = async {
        let (o, e) = tokio::join!(
            drain(out, STDOUT_LIMIT, false),
            drain(err, STDERR_TAIL, true)
        );
        let status = child.wait().await;
        (o, e, status)
    };
    let limit = a.time_limit_ms.map(Duration::from_millis);
    let result = match limit {
        Some(l) => tokio::time::timeout(l, io).await.ok(),
        None => Some(io.await),
    };
    let millis = start.elapsed().as_millis() as u64;
    let Some(((stdout, stdout_all, truncated), (stderr, stderr_all, _), status)) = result else {
        return TaskOutput {
            error: Some(format!(
                "killed at its time limit of {:.1} s",
                limit.unwrap_or_default().as_secs_f64()
            )),
            millis,
            ..Default::default()
        };
    };
    if let Some(dir) = log_dir {
        let base = dir.join(format!("task-{}-{}", a.task.0, a.attempt));
        if !stderr_all.is_empty() {
            let _ = std::fs::write(base.with_extension("err"), &stderr_all);
        }
        if truncated {
            let _ = std::fs::write(base.with_extension("out"), &stdout_all);
        }
    }
    let (exit_code, error) = match status {
        Ok(s) => match s.code() {
            Some(c) => (Some(c), None),
            None => {
                use std::os::unix::process::ExitStatusExt;
                (
                    None,
                    Some(format!("killed by signal {}", s.signal().unwrap_or(0))),
                )
            }
        },
        Err(e) => (None, Some(format!("cannot wait for it: {e}"))),
    };
    TaskOutput {
        exit_code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        truncated,
        stderr_tail: String::from_utf8_lossy(&stderr).into_owned(),
        error,
        millis,
    }
}
