//! Runs one task on a worker: its program in a process group of its own,
//! with its environment; standard output and error streamed to its log
//! files, a bounded head and tail of each kept for the result; killed
//! (the whole group) at its time limit, when cancelled, or when the runner
//! is dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Assignment, TaskOutput};
use crate::private_fs::PrivateDir;

/// The start of standard output kept as the result, in bytes.
pub const STDOUT_HEAD: usize = 256 << 10;
/// The end of standard output kept beside it when it is longer.
pub const STDOUT_TAIL: usize = 64 << 10;
/// The end of standard error kept, in bytes.
pub const STDERR_TAIL: usize = 16 << 10;
/// How much is read at a time.
const CHUNK: usize = 64 << 10;

/// What was kept of one stream.
#[derive(Debug, Default)]
struct Kept {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
    /// The log file the whole stream went to, when there is one.
    file: Option<PathBuf>,
}

/// Where a stream's log file goes: a name in a checked directory.
type LogFile<'a> = Option<(&'a PrivateDir, String)>;

/// Creates a task's log file; one that cannot be (a link or another
/// user's file planted under its name) is not written, and said so.
fn create_log(dir: &PrivateDir, name: &str) -> Option<(tokio::fs::File, PathBuf)> {
    match dir.create_file(name) {
        Ok(f) => Some((tokio::fs::File::from_std(f), dir.path().join(name))),
        Err(e) => {
            tracing::warn!(error = %e, "task output kept in memory only");
            None
        }
    }
}

/// Reads `r` to its end, keeping `head` bytes from its start and `tail`
/// from its end, and writing all of it to `file` (created once the stream
/// outgrows `head`, or at once with `always`).
async fn stream(
    mut r: impl AsyncRead + Unpin,
    head: usize,
    tail: usize,
    file: LogFile<'_>,
    always: bool,
) -> Kept {
    let mut kept = Kept::default();
    let mut out: Option<tokio::fs::File> = None;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        kept.total = kept.total.saturating_add(n as u64);
        let room = head.saturating_sub(kept.head.len());
        kept.head.extend_from_slice(&chunk[..room.min(n)]);
        let spill = always || kept.total > head as u64;
        if let (true, None, Some((dir, name))) = (spill, &out, &file) {
            if let Some((mut f, path)) = create_log(dir, name) {
                // What was kept so far goes first, then the rest as it comes.
                let already = &kept.head[..kept.head.len().min(kept.total as usize - n)];
                let _ = f.write_all(already).await;
                out = Some(f);
                kept.file = Some(path);
            }
        }
        if let Some(f) = out.as_mut() {
            let _ = f.write_all(chunk).await;
        }
        if tail > 0 {
            kept.tail.extend(chunk.iter().rev().take(tail).rev());
            let extra = kept.tail.len().saturating_sub(tail);
            kept.tail.drain(..extra);
        }
    }
    if let Some(mut f) = out {
        let _ = f.flush().await;
    }
    kept
}

/// Kills the task's whole process group when the run ends, however it
/// ends: a task's children must not outlive it, nor hold its cores.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The exit code, or why there is none (and the signal, when it was one).
fn exit_of(
    status: std::io::Result<std::process::ExitStatus>,
) -> (Option<i32>, Option<String>, Option<i32>) {
    match status {
        Ok(s) => match s.code() {
            Some(c) => (Some(c), None, None),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = s.signal().unwrap_or(0);
                (
                    None,
                    Some(format!("killed by signal {signal}")),
                    Some(signal),
                )
            }
        },
        Err(e) => (None, Some(format!("cannot wait for it: {e}")), None),
    }
}

/// `a`'s program, started in a process group of its own.
fn spawn(a: &Assignment) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(&a.argv[0]);
    cmd.args(&a.argv[1..])
        .envs(&a.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &a.cwd {
        cmd.current_dir(dir);
    }
    cmd.spawn()
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs `a`, writing its logs under `log_dir` when given
/// (`task-ID-ATTEMPT.out` once the output outgrows what is kept, and
/// `.err`). `cancelled` resolving kills it.
pub async fn run(
    a: &Assignment,
    log_dir: Option<&PrivateDir>,
    cancelled: impl Future<Output = ()>,
) -> TaskOutput {
    let start = Instant::now();
    let mut child = match spawn(a) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start `{}`: {e}", a.argv[0]), start),
    };
    let group = Group(child.id().and_then(|p| i32::try_from(p).ok()));
    let file = |ext: &str| log_dir.map(|d| (d, format!("task-{}-{}.{ext}", a.task.0, a.attempt)));
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let io = async {
        let (o, e) = tokio::join!(
            stream(out, STDOUT_HEAD, STDOUT_TAIL, file("out"), false),
            stream(err, 0, STDERR_TAIL, file("err"), false),
        );
        (o, e, child.wait().await)
    };
    let limit = a.time_limit_ms.map(Duration::from_millis);
    let timer = async {
        match limit {
            Some(l) => tokio::time::sleep(l).await,
            None => std::future::pending().await,
        }
    };
    // Biased: a task that has ended is reported as ended, even when a
    // cancel or the time limit comes at the same moment.
    let ended = tokio::select! {
        biased;
        r = io => r,
        _ = timer => {
            let l = limit.unwrap_or_default().as_secs_f64();
            return failed(format!("killed at its time limit of {l:.1} s"), start);
        }
        _ = cancelled => return failed("cancelled: killed with its process group".into(), start),
    };
    drop(group);
    let (stdout, stderr, status) = ended;
    let (exit_code, error, signal) = exit_of(status);
    let truncated = stdout.total > stdout.head.len() as u64;
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    TaskOutput {
        exit_code,
        stdout: lossy(&stdout.head),
        truncated,
        stdout_tail: truncated.then(|| lossy(&Vec::from(stdout.tail))),
        stdout_bytes: stdout.total,
        stdout_file: stdout.file.map(|f| f.display().to_string()),
        stderr_tail: lossy(&Vec::from(stderr.tail)),
        error,
        signal,
        oom_killed: false,
        millis: millis(start),
    }
}

/// The output of a run that did not reach an exit code. (Returning drops
/// the run's `Group`, which kills what is left of it.)
fn failed(error: String, start: Instant) -> TaskOutput {
    TaskOutput {
        error: Some(error),
        millis: millis(start),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_stream_keeps_its_head_and_tail_and_goes_whole_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let logs = PrivateDir::ensure(dir.path(), crate::private_fs::Access::Private).unwrap();
        let path = dir.path().join("x.out");
        let kept = stream(&data[..], 1000, 500, Some((&logs, "x.out".into())), false).await;
        assert_eq!(kept.total, 1_000_000);
        assert_eq!(kept.head, data[..1000]);
        assert_eq!(Vec::from(kept.tail), data[data.len() - 500..]);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // A short one keeps all of it and writes no file.
        let short = stream(
            &b"hello"[..],
            1000,
            500,
            Some((&logs, "y.out".into())),
            false,
        )
        .await;
        assert_eq!((short.head.as_slice(), short.file), (&b"hello"[..], None));
        // A link planted under a log's name is never written through: the
        // output is kept, the file it points to untouched.
        let victim = dir.path().join("important.txt");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("z.err")).unwrap();
        let kept = stream(&data[..], 10, 10, Some((&logs, "z.err".into())), true).await;
        assert_eq!((kept.total, kept.file), (1_000_000, None));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
