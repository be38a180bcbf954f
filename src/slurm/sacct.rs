//! How jobs ended, from accounting: `sacct` prints a line per job and per
//! step; they are read into one `JobFate` per job or array task (issue 32).
//! squeue forgets a job `MinJobAge` after it ends, and a job that ended in
//! a node failure or a preemption can leave it sooner; sacct keeps it.
//!
//! The same fields in 22.05, 24.11 and 26.05 (their `--helpformat`), and
//! `--parsable2` separates them with `|` and nothing after the last.

use std::time::Duration;

use super::{JobRef, JobState, SlurmError};

/// The fields asked for, in this order.
pub(crate) const FORMAT: &str = "JobID,State,ExitCode,Reason,ElapsedRaw,MaxRSS,NodeList";

/// The most jobs one `sacct` is asked about: about 20 KB of command line.
pub(crate) const MAX_JOBS_PER_CALL: usize = 2_000;

/// Whether sacct refused because this Slurm keeps no accounting (its
/// words in 22.05 to 26.05: "Slurm accounting storage is disabled").
pub(crate) fn says_accounting_is_off(e: &SlurmError) -> bool {
    matches!(e, SlurmError::Refused { message, .. } if message.contains("accounting storage is disabled"))
}

/// The most lines read: 3 per job (the job, its batch and extern steps)
/// for the largest batch drover asks about, with room for more steps.
const MAX_LINES: usize = 100_000;

/// How one job or array task ended, as accounting recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFate {
    /// Which job or array task.
    pub job: JobRef,
    /// Its last state (`PREEMPTED`, `OUT_OF_MEMORY`, `NODE_FAIL`, ...); an
    /// active state when it has not ended (requeued, for one).
    pub state: JobState,
    /// Who cancelled it (`CANCELLED by UID`), when it was cancelled.
    pub cancelled_by: Option<u32>,
    /// The batch script's exit code.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did (`0:9` is 9).
    pub signal: Option<i32>,
    /// Slurm's last reason for it (`None` when it gave `None`).
    pub reason: Option<String>,
    /// How long it ran.
    pub elapsed: Option<Duration>,
    /// The most memory any of its steps held, in bytes (only where Slurm
    /// gathers it: `JobAcctGatherType` other than `none`).
    pub max_rss: Option<u64>,
    /// Where it ran.
    pub nodes: Option<String>,
}

/// The arguments for the fates of `jobs` (all at once).
pub(crate) fn args(jobs: &[JobRef]) -> Vec<String> {
    let list = jobs
        .iter()
        .map(JobRef::to_string)
        .collect::<Vec<_>>()
        .join(",");
    [
        "--noheader",
        "--parsable2",
        &format!("--format={FORMAT}"),
        &format!("--jobs={list}"),
    ]
    .map(String::from)
    .to_vec()
}

fn unexpected(line: &str) -> SlurmError {
    SlurmError::Unexpected {
        command: "sacct".into(),
        output: line.chars().take(200).collect(),
    }
}

/// Reads sacct's lines: a job's line gives its fate, its steps' lines
/// (`12.batch`, `12_3.extern`) their MaxRSS. Records that are no single
/// job (a pending array's `12_[4-5]`, a heterogeneous job's `12+0`) are
/// left out: drover asks about jobs and tasks it has seen run.
pub(crate) fn parse(text: &str) -> Result<Vec<JobFate>, SlurmError> {
    let mut fates: Vec<JobFate> = Vec::new();
    for line in text
        .lines()
        .take(MAX_LINES)
        .filter(|l| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('|').collect();
        let [id, state, exit, reason, elapsed, max_rss, nodes] = fields[..] else {
            return Err(unexpected(line));
        };
        let (job, step) = match id.split_once('.') {
            Some((job, step)) => (job, Some(step)),
            None => (id, None),
        };
        let Ok(job) = job.parse::<JobRef>() else {
            if job.contains(['[', '+']) {
                continue;
            }
            return Err(unexpected(line));
        };
        let rss = memory(max_rss).map_err(|()| unexpected(line))?;
        if let Some(step) = step {
            // A step follows its job's line; one without it is skipped.
            if let Some(fate) = fates.iter_mut().rev().find(|f| f.job == job) {
                fate.max_rss = fate.max_rss.max(rss);
                // A cancelled job's own line says 0:0; its batch step has
                // the signal that ended the script (0:15).
                if step == "batch" && fate.signal.is_none() {
                    fate.signal = exit_status(exit).and_then(|(_, signal)| signal);
                }
            }
            continue;
        }
        let (exit_code, signal) = exit_status(exit).ok_or_else(|| unexpected(line))?;
        fates.push(JobFate {
            job,
            state: JobState::from(state),
            cancelled_by: state
                .strip_prefix("CANCELLED by ")
                .and_then(|uid| uid.trim().parse().ok()),
            exit_code,
            signal,
            reason: Some(reason.trim())
                .filter(|r| !r.is_empty() && *r != "None")
                .map(String::from),
            elapsed: elapsed.trim().parse().ok().map(Duration::from_secs),
            max_rss: rss,
            nodes: Some(nodes.trim())
                .filter(|n| !n.is_empty() && *n != "None assigned")
                .map(String::from),
        });
    }
    Ok(fates)
}

/// `CODE:SIGNAL`: the code always (0 is a clean exit, a fact worth
/// keeping), the signal only when one ended the job.
fn exit_status(field: &str) -> Option<(Option<i32>, Option<i32>)> {
    let (code, signal) = field.trim().split_once(':')?;
    let code: u8 = code.parse().ok()?;
    let signal: u8 = signal.parse().ok()?;
    Some((
        Some(i32::from(code)),
        (signal != 0).then_some(i32::from(signal)),
    ))
}

/// sacct's memory (`0`, `1234K`, `56.50M`, `2G`), in bytes; empty is none.
fn memory(field: &str) -> Result<Option<u64>, ()> {
    let field = field.trim();
    if field.is_empty() {
        return Ok(None);
    }
    let bytes = super::tres::scaled(field, 'B').ok_or(())?;
    // Saturating: a value past u64 is no memory Slurm measured.
    Ok(Some(if bytes >= u64::MAX as f64 {
        u64::MAX
    } else {
        bytes as u64
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::JobId;

    fn task(array: u64, task: u32) -> JobRef {
        JobRef::Task {
            array: JobId::new(array),
            task,
        }
    }

    #[test]
    fn a_job_line_gives_the_fate_and_its_steps_the_most_memory() {
        let text = "\
12|OUT_OF_MEMORY|0:125|None|7||node1
12.batch|OUT_OF_MEMORY|0:125||7|1048576K|node1
12.extern|COMPLETED|0:0||7|1024K|node1
13_2|CANCELLED by 1001|0:15|None|30||node2
13_2.batch|CANCELLED|0:15||30|2.5M|node2
14|PREEMPTED|0:0|None|61||node[1-2]
15|NODE_FAIL|1:0|None|0||None assigned
16_[4-5]|PENDING|0:0|Priority|0||None assigned
";
        let fates = parse(text).unwrap();
        assert_eq!(fates.len(), 4, "{fates:?}");
        let oom = &fates[0];
        assert_eq!(oom.job, JobRef::Job(JobId::new(12)));
        assert_eq!(oom.state, JobState::OutOfMemory);
        assert_eq!((oom.exit_code, oom.signal), (Some(0), Some(125)));
        assert_eq!(oom.max_rss, Some(1 << 30));
        assert_eq!(oom.elapsed, Some(Duration::from_secs(7)));
        let cancelled = &fates[1];
        assert_eq!(cancelled.job, task(13, 2));
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert_eq!(cancelled.cancelled_by, Some(1001));
        assert_eq!(cancelled.signal, Some(15));
        assert_eq!(cancelled.max_rss, Some(2_621_440));
        assert_eq!(fates[2].state, JobState::Preempted);
        assert_eq!(fates[2].nodes.as_deref(), Some("node[1-2]"));
        assert_eq!(fates[2].reason, None);
        assert_eq!(fates[3].state, JobState::NodeFail);
        assert_eq!(fates[3].nodes, None);
        assert_eq!(fates[3].exit_code, Some(1));
    }

    #[test]
    fn what_is_not_sacct_s_form_is_an_error_quoting_it() {
        for bad in [
            "12|COMPLETED|0:0|None|3|",
            "x|COMPLETED|0:0|None|3||node1",
            "12|COMPLETED|zero|None|3||node1",
            "12|COMPLETED|0:0|None|3|12Q|node1",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(&bad[..5]), "{bad}: {e}");
        }
    }

    #[test]
    fn memory_reads_every_unit_and_refuses_nonsense() {
        assert_eq!(memory(""), Ok(None));
        assert_eq!(memory("0"), Ok(Some(0)));
        assert_eq!(memory("512K"), Ok(Some(512 * 1024)));
        assert_eq!(memory("1.5G"), Ok(Some(3 << 29)));
        assert_eq!(memory("99999999P"), Ok(Some(u64::MAX)));
        assert_eq!(memory("-1K"), Err(()));
        assert_eq!(memory("NaNK"), Err(()));
        assert_eq!(memory("K"), Err(()));
    }

    #[test]
    fn one_call_asks_for_every_job() {
        let args = args(&[JobRef::Job(JobId::new(7)), task(8, 1)]);
        assert!(args.contains(&"--jobs=7,8_1".to_string()), "{args:?}");
        assert!(args.contains(&"--parsable2".to_string()));
    }
}
