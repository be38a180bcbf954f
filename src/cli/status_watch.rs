//! `drover status --watch`: the pool's status redrawn in the terminal
//! every interval, for users on a login node over SSH: the jobs with their
//! states and pending reasons (or the workers, for a bare scheduler), the
//! tasks by state, and how fast they finish. It follows a scheduler that
//! moved (a journal pool restarted elsewhere) and ends, exit 1, once no
//! scheduler answers.

use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use drover::client::SchedulerClient;
use drover::protocol::{unix_ms, ClusterStatus, TaskCounts, WorkerInfo};

use super::error::{CliError, CliResult, Context};

/// What one look at the scheduler found.
struct Look {
    cluster: Option<ClusterStatus>,
    workers: Vec<WorkerInfo>,
    tasks: TaskCounts,
}

async fn look(client: &SchedulerClient) -> Result<Look, drover::client::ClientError> {
    let tasks = client.tasks(None, true).await?.counts;
    let cluster = client.cluster().await.ok();
    let workers = match cluster {
        Some(_) => Vec::new(),
        None => client.workers().await?,
    };
    Ok(Look {
        cluster,
        workers,
        tasks,
    })
}

/// Tasks that are over, for the rate.
fn ended(c: &TaskCounts) -> usize {
    c.succeeded + c.failed + c.cancelled
}

/// One frame: a header with the time, the pool (or workers), the tasks.
fn frame(look: &Look, rate: Option<f64>, every: Duration) -> String {
    let now = clock(unix_ms());
    let mut out = format!(
        "drover status at {now} (every {:.1} s; Ctrl-C ends)\n",
        every.as_secs_f64()
    );
    match &look.cluster {
        Some(c) => out.push_str(&super::status::cluster_table(c)),
        None => out.push_str(&super::status::table(&look.workers)),
    }
    let t = &look.tasks;
    out.push_str(&format!(
        "tasks: {} waiting, {} ready, {} running, {} succeeded, {} failed, {} cancelled",
        t.waiting, t.ready, t.running, t.succeeded, t.failed, t.cancelled
    ));
    if let Some(rate) = rate {
        out.push_str(&format!("; {rate:.1} ended/s"));
    }
    out.push('\n');
    out
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, (s / 60) % 60, s % 60)
}

/// Redraws every `every` until interrupted, or until no scheduler answers.
pub async fn watch(file: &Path, every: Duration) -> CliResult {
    let client = SchedulerClient::from_path(file)?;
    let terminal = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<(Instant, usize)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
        let seen = match look(&client).await {
            Ok(seen) => seen,
            Err(e) => {
                return Err(CliError::failure(format!(
                    "the scheduler no longer answers (the pool closed, or its driver died): {e}"
                )))
            }
        };
        let now = Instant::now();
        let rate = previous.map(|(at, n)| {
            let secs = now.duration_since(at).as_secs_f64().max(1e-3);
            ended(&seen.tasks).saturating_sub(n) as f64 / secs
        });
        previous = Some((now, ended(&seen.tasks)));
        let text = frame(&seen, rate, every);
        let mut stdout = std::io::stdout().lock();
        // A terminal is redrawn in place; a pipe or file gets each frame
        // after the last, separated by a blank line.
        let shown = match terminal {
            true => write!(stdout, "\x1b[H\x1b[2J{text}"),
            false => writeln!(stdout, "{text}"),
        };
        shown
            .and_then(|()| stdout.flush())
            .context("printing the status")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_shows_the_workers_the_tasks_and_the_rate() {
        let look = Look {
            cluster: None,
            workers: Vec::new(),
            tasks: TaskCounts {
                ready: 3,
                running: 2,
                succeeded: 7,
                ..Default::default()
            },
        };
        let text = frame(&look, Some(2.5), Duration::from_secs(2));
        assert!(text.contains("every 2.0 s"), "{text}");
        assert!(text.contains("0 workers"), "{text}");
        assert!(
            text.contains("tasks: 0 waiting, 3 ready, 2 running, 7 succeeded, 0 failed, 0 cancelled; 2.5 ended/s"),
            "{text}"
        );
        assert_eq!(clock(86_400_000 + 3_723_000), "01:02:03 UTC");
    }
}
