//! Reading `squeue -O`: the fields drover needs, `|`-separated, for one
//! job name when a pool asks. Filtered by Slurm itself, a pool's listing
//! costs what the pool's own jobs cost: with 1,000 other jobs queued it
//! took 40 ms where `squeue --json` (which Slurm 22.05 does not filter by
//! name) took 0.7 s (docs/BENCHMARKS.md).
//!
//! Arrays come one record per task once Slurm has split a task off, and
//! one record per range of tasks not yet split off (no `-r`: fewer lines).
//! What this format cannot tell is not guessed at: after a controller
//! restart, Slurm listed a requeued array as one pending record with no
//! task id, exactly like a plain pending job (`72|72|N/A|72|PENDING`), and
//! a pool reading it as a plain job took the array's tasks as gone and
//! resubmitted them (seen twice in CI, with and without `-r`). So a
//! listing with a pending (or requeued) record without a task id is
//! refused with [`Unreadable`], and the caller asks `--json`, which says
//! whether a record is an array's. Pools of arrays never pay for it; a
//! pool's single jobs cost a `--json` listing while they wait.

use super::{expand_tasks, JobId, JobInfo, JobRef, JobState, SlurmError};

/// `squeue`'s arguments: every state (ended jobs too, while Slurm keeps
/// them), the fields `parse` reads, one job name when given.
pub(crate) fn args(name: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["-h", "-t", "all", "-O", FORMAT]
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some(name) = name {
        args.extend(["-n".to_string(), name.to_string()]);
    }
    args
}

const FORMAT: &str = "JobID:|,ArrayJobID:|,ArrayTaskID:|,JobArrayID:|,State:|,Reason:|,\
                      NodeList:|,exit_code:|,StartTime:|,Name:|,Comment:|";

/// Fields before the name; the name and the comment come last, so that
/// a comment holding `|` still reads whole.
const FIXED: usize = 9;

/// The environment squeue is run with: times (`StartTime`) as Unix
/// seconds.
pub(crate) fn env() -> Vec<(String, String)> {
    super::allocations::env()
}

/// A pending job's expected start, as Unix seconds (`StartTime` under
/// `SLURM_TIME_FORMAT=%s`): Slurm's backfill scheduler's estimate, `N/A`
/// until it has made one. A running job's field is its actual start,
/// which is no expectation.
fn expected_start(field: &str, state: &JobState) -> Option<u64> {
    let at = field.trim().parse::<u64>().ok().filter(|s| *s > 0)?;
    (*state == JobState::Pending).then_some(at)
}

/// Why a listing in this format cannot be used.
#[derive(Debug)]
pub(crate) enum Unreadable {
    /// A line that is not what `FORMAT` asks for: Slurm said something
    /// else (its own words are kept).
    Malformed(SlurmError),
    /// A record this format cannot tell from another kind (an array's
    /// record without tasks, or a plain job): ask `--json`.
    Ambiguous(String),
}

fn malformed(line: &str) -> Unreadable {
    Unreadable::Malformed(SlurmError::Unexpected {
        command: "squeue -O".into(),
        output: line.chars().take(200).collect(),
    })
}

fn id(field: &str, line: &str) -> Result<u64, Unreadable> {
    field.trim().parse().map_err(|_| malformed(line))
}

/// The exit code in `exit_code:` as Slurm 22.05 prints it (a wait status:
/// the code is in the high byte, `768`) or as 24.11 and later do
/// (`CODE:SIGNAL`, `3:0`).
fn exit_code(field: &str) -> Option<i32> {
    let field = field.trim();
    match field.split_once(':') {
        Some((code, _signal)) => code.parse::<u8>().ok().map(i32::from),
        None => field.parse::<i64>().ok().map(|s| ((s >> 8) & 0xff) as i32),
    }
}

/// One line of `squeue -O` as one `JobInfo` per job or array task.
fn parse_line(line: &str, out: &mut Vec<JobInfo>) -> Result<(), Unreadable> {
    let fields: Vec<&str> = line.splitn(FIXED + 1, '|').collect();
    let [job_id, array_id, task, display, state, reason, nodes, exit, start, rest] = fields[..]
    else {
        return Err(malformed(line));
    };
    let (job_id, array_id) = (id(job_id, line)?, id(array_id, line)?);
    let state = JobState::from(state.trim());
    let rest = rest.strip_suffix('|').unwrap_or(rest);
    let (name, comment) = rest.split_once('|').unwrap_or((rest, ""));
    let present = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s != "None" && s != "(null)" && s != "N/A").then(|| s.to_string())
    };
    let exit_code = match state.is_active() {
        true => None,
        false => exit_code(exit),
    };
    let info = |job: JobRef, job_id: Option<JobId>| JobInfo {
        job,
        job_id,
        name: name.trim().to_string(),
        comment: present(comment).unwrap_or_default(),
        state: state.clone(),
        reason: present(reason),
        nodes: present(nodes),
        exit_code,
        expected_start: expected_start(start, &state),
    };
    if !display.contains('_') {
        let waiting = state == JobState::Pending
            || matches!(&state, JobState::Other(s) if s.starts_with("REQUEUE"));
        if waiting {
            return Err(Unreadable::Ambiguous(line.to_string()));
        }
        out.push(info(
            JobRef::Job(JobId::new(job_id)),
            Some(JobId::new(job_id)),
        ));
        return Ok(());
    }
    let array = JobId::new(array_id);
    let task = task.trim();
    if let Ok(task) = task.parse::<u32>() {
        // A task not yet split off its array shows the array's id.
        let split = job_id != array_id || state != JobState::Pending;
        out.push(info(
            JobRef::Task { array, task },
            split.then(|| JobId::new(job_id)),
        ));
        return Ok(());
    }
    let tasks = expand_tasks(task.trim_start_matches('[').trim_end_matches(']'));
    if tasks.is_empty() {
        return Err(Unreadable::Ambiguous(line.to_string()));
    }
    out.extend(
        tasks
            .into_iter()
            .map(|task| info(JobRef::Task { array, task }, None)),
    );
    Ok(())
}

/// Parses `squeue -h -O ...` output into one `JobInfo` per job or task.
pub(crate) fn parse(text: &str) -> Result<Vec<JobInfo>, Unreadable> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        parse_line(line, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_job_and_task() {
        // As squeue 22.05 printed them on the local Slurm (without -r).
        let text = "2147|2147|N/A|2147|FAILED|NonZeroExitCode|node1|768|1796652624|w|drover:abc|\n\
                    51|51|1-2|51_[1-2]|PENDING|Resources||0|1796652669|w|(null)|\n\
                    52|51|0|51_0|RUNNING|None|node2|0|1796652627|w|a|b|\n\
                    60|60|3|60_3|PENDING|None||0|N/A|w||\n";
        let jobs = parse(text).unwrap();
        let names: Vec<String> = jobs.iter().map(|j| j.job.to_string()).collect();
        assert_eq!(names, ["2147", "51_1", "51_2", "51_0", "60_3"]);
        assert_eq!(jobs[0].job_id, Some(JobId::new(2147)));
        assert_eq!(jobs[0].state, JobState::Failed);
        assert_eq!(jobs[0].exit_code, Some(3));
        assert_eq!(jobs[0].nodes.as_deref(), Some("node1"));
        assert_eq!(jobs[1].job_id, None, "not split off yet");
        assert_eq!(jobs[1].reason.as_deref(), Some("Resources"));
        assert_eq!(jobs[1].exit_code, None);
        assert_eq!(jobs[1].comment, "");
        // Slurm's estimate for a waiting job; a running one's start is no
        // expectation, and a job not yet estimated has none.
        assert_eq!(jobs[1].expected_start, Some(1796652669));
        assert_eq!(
            (jobs[3].expected_start, jobs[4].expected_start),
            (None, None)
        );
        assert_eq!(jobs[3].job_id, Some(JobId::new(52)));
        assert_eq!(jobs[3].reason, None, "None: not yet considered");
        assert_eq!(
            (jobs[3].name.as_str(), jobs[3].comment.as_str()),
            ("w", "a|b")
        );
        assert_eq!(jobs[4].job_id, None, "one pending task left, not split off");
    }

    #[test]
    fn throttled_and_stepped_ranges_expand() {
        let jobs = parse("7|7|0-4:2%1|7_[0-4:2%1]|PENDING|JobArrayTaskLimit||0|N/A|w||\n").unwrap();
        let names: Vec<String> = jobs.iter().map(|j| j.job.to_string()).collect();
        assert_eq!(names, ["7_0", "7_2", "7_4"]);
    }

    #[test]
    fn a_pending_record_without_a_task_id_is_refused_not_read_as_a_job() {
        // The record Slurm listed for a requeued array after a controller
        // restart (CI, 2026-11-27), which reads like a plain pending job.
        let e = parse("72|72|N/A|72|PENDING|BeginTime||0|N/A|w||\n").unwrap_err();
        assert!(matches!(e, Unreadable::Ambiguous(_)), "{e:?}");
        let e = parse("64|64|N/A|64_*|PENDING|BeginTime||0|N/A|w||\n").unwrap_err();
        assert!(matches!(e, Unreadable::Ambiguous(_)), "{e:?}");
        // A running or ended plain job is read as one.
        let jobs = parse("80|80|N/A|80|RUNNING|None|node1|0|1796652627|w||\n").unwrap();
        assert_eq!(jobs[0].job, JobRef::Job(JobId::new(80)));
    }

    #[test]
    fn a_line_not_understood_is_an_error_that_quotes_it() {
        let Err(Unreadable::Malformed(e)) = parse("slurm_load_jobs error: something|odd\n") else {
            panic!("accepted");
        };
        assert!(e.to_string().contains("slurm_load_jobs error"), "{e}");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn the_listing_is_filtered_by_name_when_asked() {
        assert!(args(None).iter().all(|a| a != "-n"));
        let named = args(Some("drover-worker-abc"));
        assert_eq!(&named[named.len() - 2..], ["-n", "drover-worker-abc"]);
        assert!(
            !named.iter().any(|a| a == "-r"),
            "ranges, not one line per task"
        );
    }
}
