//! Reading `squeue`: the fields drover needs, one line per job or array
//! task (`-r`), `|`-separated (`-O FIELD:|,...`), for one job name when a
//! pool asks. Filtered by Slurm itself, the listing costs what the pool's
//! own jobs cost: `squeue --json` (which Slurm 22.05 does not filter)
//! printed 2.9 MB for 759 jobs of other benchmarks in 0.1-0.2 s, where
//! this printed the same jobs in 13 ms (docs/BENCHMARKS.md).

use super::{JobId, JobInfo, JobRef, JobState, SlurmError};

/// `squeue`'s arguments: every state (ended jobs too, while Slurm keeps
/// them), array tasks one per line, the fields `parse` reads.
pub(crate) fn args(name: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["-h", "-r", "-t", "all", "-O", FORMAT]
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some(name) = name {
        args.extend(["-n".to_string(), name.to_string()]);
    }
    args
}

const FORMAT: &str =
    "JobID:|,ArrayJobID:|,ArrayTaskID:|,State:|,Reason:|,NodeList:|,exit_code:|,Name:|,Comment:|";

/// Fields before the name; the name and the comment come last, so that
/// a comment holding `|` still reads whole.
const FIXED: usize = 7;

fn unexpected(line: &str) -> SlurmError {
    SlurmError::Unexpected {
        command: "squeue -O".into(),
        output: line.chars().take(200).collect(),
    }
}

fn id(field: &str, line: &str) -> Result<u64, SlurmError> {
    field.trim().parse().map_err(|_| unexpected(line))
}

/// One line of `squeue -O` as a `JobInfo`.
fn parse_line(line: &str) -> Result<JobInfo, SlurmError> {
    let fields: Vec<&str> = line.splitn(FIXED + 1, '|').collect();
    let [job_id, array_id, task, state, reason, nodes, exit, rest] = fields[..] else {
        return Err(unexpected(line));
    };
    let (job_id, array_id) = (id(job_id, line)?, id(array_id, line)?);
    let state = JobState::from(state.trim());
    let rest = rest.strip_suffix('|').unwrap_or(rest);
    let (name, comment) = rest.split_once('|').unwrap_or((rest, ""));
    let comment = comment.trim();
    let exit_code = match state.is_active() {
        true => None,
        // A wait status: the exit code is in the high byte.
        false => exit
            .trim()
            .parse::<i64>()
            .ok()
            .map(|s| ((s >> 8) & 0xff) as i32),
    };
    let (job, own_id) = match task.trim().parse::<u32>() {
        Err(_) => (JobRef::Job(JobId::new(job_id)), Some(JobId::new(job_id))),
        Ok(task) => {
            // A task not yet split off its array shows the array's id.
            let split = job_id != array_id || state != JobState::Pending;
            let job = JobRef::Task {
                array: JobId::new(array_id),
                task,
            };
            (job, split.then(|| JobId::new(job_id)))
        }
    };
    let present = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s != "None" && s != "(null)").then(|| s.to_string())
    };
    Ok(JobInfo {
        job,
        job_id: own_id,
        name: name.trim().to_string(),
        comment: present(comment).unwrap_or_default(),
        state,
        reason: present(reason),
        nodes: present(nodes),
        exit_code,
    })
}

/// Parses `squeue -h -r -O ...` output into one `JobInfo` per line.
pub(crate) fn parse(text: &str) -> Result<Vec<JobInfo>, SlurmError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_job_and_task() {
        // As squeue 22.05 printed them on the local Slurm.
        let text = "2147|2147|N/A|FAILED|NonZeroExitCode|node1|768|w|drover:abc|\n\
                    2149|2149|0|PENDING|Resources||0|w|drover:abc|\n\
                    2149|2149|1|PENDING|None||0|w|(null)|\n\
                    2151|2149|2|RUNNING|None|node2|0|w|a|b|\n";
        let jobs = parse(text).unwrap();
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs[0].job.to_string(), "2147");
        assert_eq!(jobs[0].job_id, Some(JobId::new(2147)));
        assert_eq!(jobs[0].state, JobState::Failed);
        assert_eq!(jobs[0].exit_code, Some(3));
        assert_eq!(jobs[0].nodes.as_deref(), Some("node1"));
        assert_eq!(jobs[1].job.to_string(), "2149_0");
        assert_eq!(jobs[1].job_id, None, "not split off yet");
        assert_eq!(jobs[1].reason.as_deref(), Some("Resources"));
        assert_eq!(jobs[1].exit_code, None);
        assert_eq!(jobs[2].reason, None, "None: not yet considered");
        assert_eq!(jobs[2].comment, "");
        assert_eq!(jobs[3].job.to_string(), "2149_2");
        assert_eq!(jobs[3].job_id, Some(JobId::new(2151)));
        assert_eq!(
            (jobs[3].name.as_str(), jobs[3].comment.as_str()),
            ("w", "a|b")
        );
    }

    #[test]
    fn a_line_not_understood_is_an_error_that_quotes_it() {
        let e = parse("slurm_load_jobs error: something|odd\n").unwrap_err();
        assert!(e.to_string().contains("slurm_load_jobs error"), "{e}");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn the_listing_is_filtered_by_name_when_asked() {
        assert!(args(None).iter().all(|a| a != "-n"));
        let named = args(Some("drover-worker-abc"));
        assert_eq!(&named[named.len() - 2..], ["-n", "drover-worker-abc"]);
    }
}
