//! The one reader of Slurm's job record in JSON, in the openapi v0.0.36 to
//! v0.0.38 form and the data_parser form of v0.0.39 on (`json_shapes`), as `squeue --json` prints it and slurmrestd's
//! `GET .../jobs` answers it: the parts drover needs, one `JobInfo` per
//! job or array task, and a job's time left. (`squeue -O`'s text form is
//! read by `squeue_fields.rs` into the same `JobInfo`.)

use serde::Deserialize;

use super::json_shapes::{Exit, Number, States};
use super::{expand_tasks, JobId, JobInfo, JobRef, JobState, SlurmError};

/// The parts of `squeue --json` (openapi v0.0.38) drover reads.
#[derive(Deserialize)]
struct SqueueJson {
    #[serde(default)]
    errors: Vec<SqueueError>,
    jobs: Vec<SqueueJob>,
}

/// An error squeue reports inside its JSON. With the controller down it
/// exits 0 with one of these and an empty job list, which must not be
/// read as "no jobs".
#[derive(Deserialize)]
struct SqueueError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: String,
}

#[derive(Deserialize)]
struct SqueueJob {
    job_id: u64,
    /// 0 (or unset) for a job that is not part of an array.
    #[serde(default)]
    array_job_id: Option<Number>,
    #[serde(default)]
    array_task_id: Option<Number>,
    #[serde(default)]
    array_task_string: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    comment: Option<String>,
    job_state: States,
    #[serde(default)]
    state_reason: Option<String>,
    /// Slurm's own words for the reason, when it has some (a job held
    /// after a failed launch: `JobHeldUser` with "launch failed requeued
    /// held"); squeue's `%r` shows these in place of the reason.
    #[serde(default)]
    state_description: Option<String>,
    #[serde(default)]
    nodes: Option<String>,
    #[serde(default)]
    exit_code: Option<Exit>,
    /// When it ends at the latest (Unix seconds), once it runs.
    #[serde(default)]
    end_time: Option<Number>,
    /// When it started, or (while pending) when Slurm expects it to.
    #[serde(default)]
    start_time: Option<Number>,
    /// Its time limit in minutes; 0 or less, unset or infinite: none.
    #[serde(default)]
    time_limit: Option<Number>,
}

impl SqueueJob {
    fn array(&self) -> u64 {
        self.array_job_id.and_then(Number::unsigned).unwrap_or(0)
    }

    fn task(&self) -> Option<u32> {
        self.array_task_id
            .and_then(Number::unsigned)
            .and_then(|t| u32::try_from(t).ok())
    }

    fn is(&self, job: JobRef) -> bool {
        match job {
            JobRef::Job(id) => self.job_id == id.get(),
            JobRef::Task { array, task } => {
                self.array() == array.get() && self.task() == Some(task)
            }
        }
    }

    /// Its time limit, when it has one.
    fn limited(&self) -> bool {
        self.time_limit
            .and_then(Number::value)
            .is_some_and(|t| t > 0)
    }
}

/// Reads the listing `command` answered; one with errors is Slurm not
/// answering, not an empty queue.
fn read(command: &str, text: &[u8]) -> Result<Vec<SqueueJob>, SlurmError> {
    let parsed: SqueueJson = serde_json::from_slice(text).map_err(|e| SlurmError::Unexpected {
        command: command.into(),
        output: e.to_string(),
    })?;
    if !parsed.errors.is_empty() {
        let message = parsed
            .errors
            .iter()
            .map(|e| format!("{}: {} ({})", e.source, e.description, e.error))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(SlurmError::Unreachable {
            command: command.into(),
            message,
        });
    }
    Ok(parsed.jobs)
}

/// The time `job` has left by the listing `command` answered, at Unix
/// second `now`: `None` when it is not listed, has no limit or has not
/// started.
pub(crate) fn time_left(
    command: &str,
    text: &[u8],
    job: JobRef,
    now: u64,
) -> Result<Option<std::time::Duration>, SlurmError> {
    Ok(read(command, text)?
        .into_iter()
        .find(|j| j.is(job))
        .filter(SqueueJob::limited)
        .and_then(|j| j.end_time.and_then(Number::unsigned))
        .filter(|end| *end > 0)
        .map(|end| std::time::Duration::from_secs(end.saturating_sub(now))))
}

/// Parses `squeue --json` into one `JobInfo` per job or array task. A
/// listing that carries errors is no listing: Slurm did not answer.
pub(crate) fn parse_squeue_json(text: &str) -> Result<Vec<JobInfo>, SlurmError> {
    parse_listing("squeue --json", text.as_bytes())
}

/// Parses a listing `command` answered (see `parse_squeue_json`).
pub(crate) fn parse_listing(command: &str, text: &[u8]) -> Result<Vec<JobInfo>, SlurmError> {
    let jobs = read(command, text)?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        let (array_id, task) = (j.array(), j.task());
        let state = JobState::from(j.job_state.base());
        let reason = j
            .state_description
            .filter(|d| !d.is_empty())
            .or(j.state_reason)
            .filter(|r| !r.is_empty() && r != "None");
        let nodes = j.nodes.filter(|n| !n.is_empty());
        let exit_code = if state.is_active() {
            None
        } else {
            j.exit_code.and_then(Exit::code)
        };
        let info = |job: JobRef, job_id: Option<JobId>| JobInfo {
            job,
            job_id,
            name: j.name.clone(),
            comment: j.comment.clone().unwrap_or_default(),
            state: state.clone(),
            reason: reason.clone(),
            nodes: nodes.clone(),
            exit_code,
            expected_start: (state == JobState::Pending)
                .then(|| j.start_time.and_then(Number::unsigned))
                .flatten()
                .filter(|s| *s > 0),
        };
        let array = JobId::new(array_id);
        match (array_id, task) {
            (0, _) => out.push(info(
                JobRef::Job(JobId::new(j.job_id)),
                Some(JobId::new(j.job_id)),
            )),
            (_, Some(task)) => out.push(info(
                JobRef::Task { array, task },
                Some(JobId::new(j.job_id)),
            )),
            (_, None) => {
                // Tasks not yet split off their array: one entry per task.
                for task in expand_tasks(j.array_task_string.as_deref().unwrap_or_default()) {
                    out.push(info(JobRef::Task { array, task }, None));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_json_gives_one_entry_per_job_and_task() {
        let text = r#"{"meta":{},"errors":[],"jobs":[
          {"job_id":25,"array_job_id":25,"array_task_id":null,"array_task_string":"2-3","name":"w","comment":"drover:abc","job_state":"PENDING","state_reason":"Resources","nodes":"","exit_code":0},
          {"job_id":26,"array_job_id":25,"array_task_id":0,"array_task_string":"","name":"w","comment":"drover:abc","job_state":"FAILED","state_reason":"NonZeroExitCode","nodes":"node1","exit_code":768},
          {"job_id":9,"array_job_id":0,"array_task_id":null,"name":"x","job_state":"RUNNING","state_reason":"None","nodes":"node2","exit_code":0}
        ]}"#;
        let jobs = parse_squeue_json(text).unwrap();
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs[0].job.to_string(), "25_2");
        assert_eq!(jobs[0].reason.as_deref(), Some("Resources"));
        assert_eq!(jobs[0].job_id, None);
        assert_eq!(jobs[1].job.to_string(), "25_3");
        assert_eq!(jobs[2].job.to_string(), "25_0");
        assert_eq!(jobs[2].job_id, Some(JobId::new(26)));
        assert_eq!(jobs[2].state, JobState::Failed);
        assert_eq!(jobs[2].exit_code, Some(3));
        assert_eq!(jobs[3].job.to_string(), "9");
        assert_eq!(jobs[3].reason, None);
        assert_eq!(jobs[3].exit_code, None);
    }

    #[test]
    fn a_job_held_after_a_failed_launch_reads_as_squeue_says_it() {
        // As 22.05's squeue --json printed it for such a job.
        let text = r#"{"jobs":[
          {"job_id":4,"array_job_id":0,"name":"w","job_state":"PENDING","state_reason":"JobHeldUser","state_description":"launch failed requeued held"},
          {"job_id":5,"array_job_id":0,"name":"w","job_state":"PENDING","state_reason":"Priority","state_description":""}
        ]}"#;
        let jobs = parse_squeue_json(text).unwrap();
        assert!(crate::slurm::is_launch_failure_hold(
            jobs[0].reason.as_deref()
        ));
        assert_eq!(jobs[1].reason.as_deref(), Some("Priority"));
    }

    #[test]
    fn time_left_reads_the_same_record() {
        let text = br#"{"jobs":[
          {"job_id":31,"array_job_id":30,"array_task_id":1,"name":"w","job_state":"RUNNING","end_time":1000,"time_limit":10},
          {"job_id":32,"array_job_id":0,"name":"w","job_state":"RUNNING","end_time":2000,"time_limit":0}
        ]}"#;
        let task = JobRef::Task {
            array: JobId::new(30),
            task: 1,
        };
        let left = time_left("GET /jobs", text, task, 400).unwrap();
        assert_eq!(left, Some(std::time::Duration::from_secs(600)));
        let unlimited = JobRef::Job(JobId::new(32));
        assert_eq!(time_left("GET /jobs", text, unlimited, 400).unwrap(), None);
        let absent = JobRef::Job(JobId::new(7));
        assert_eq!(time_left("GET /jobs", text, absent, 400).unwrap(), None);
    }

    #[test]
    fn a_listing_with_errors_is_slurm_not_answering_not_an_empty_queue() {
        // What squeue --json printed, with exit status 0, while slurmctld was down.
        let text = r#"{"meta":{},"errors":[{"description":"Failed while looking for jobs","error_number":-1,"error":"Unspecified error","source":"slurm_load_jobs"}],"jobs":[]}"#;
        let e = parse_squeue_json(text).unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert!(
            e.to_string().contains("Failed while looking for jobs"),
            "{e}"
        );
    }
}
