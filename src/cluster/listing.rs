//! Slurm's listing read in the light of what the pool submitted. Pure.
//!
//! After a controller restart (its saved state older than the start of an
//! array's tasks), CI saw a requeued array listed as one record with the
//! array's id and no task, which reads like a plain job: the pool took the
//! array's four tasks as gone, adopted a "job" it never submitted, and
//! submitted four more. Whatever the listing's format says, the pool knows
//! which ids are its arrays: a plain job whose id is one of them is that
//! array's tasks not listed on their own.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::slurm::{JobId, JobInfo, JobRef};

/// The listing with every plain-job record whose id is one of the pool's
/// arrays (and not a plain job it submitted) replaced by one record per
/// task of that array the pool still expects (`expected`) and Slurm does
/// not list separately. Borrowed unchanged when there is no such record.
pub(crate) fn as_submitted<'a>(
    listing: &'a [JobInfo],
    expected: impl IntoIterator<Item = JobRef>,
) -> Cow<'a, [JobInfo]> {
    // The common case, a pool of arrays listed by task, costs one pass.
    if !listing.iter().any(|i| matches!(i.job, JobRef::Job(_))) {
        return Cow::Borrowed(listing);
    }
    let mut plain = BTreeSet::new();
    let mut arrays: BTreeMap<JobId, Vec<u32>> = BTreeMap::new();
    for job in expected {
        match job {
            JobRef::Job(id) => {
                plain.insert(id);
            }
            JobRef::Task { array, task } => arrays.entry(array).or_default().push(task),
        }
    }
    let is_array_record = |info: &JobInfo| match info.job {
        JobRef::Job(id) => !plain.contains(&id) && arrays.contains_key(&id),
        JobRef::Task { .. } => false,
    };
    if !listing.iter().any(is_array_record) {
        return Cow::Borrowed(listing);
    }
    let listed: HashSet<JobRef> = listing.iter().map(|i| i.job).collect();
    let mut out = Vec::with_capacity(listing.len());
    for info in listing {
        let array = match info.job {
            JobRef::Job(array) if is_array_record(info) => array,
            _ => {
                out.push(info.clone());
                continue;
            }
        };
        tracing::debug!(%array, state = %info.state, "an array listed as one record without tasks");
        for &task in &arrays[&array] {
            let job = JobRef::Task { array, task };
            if !listed.contains(&job) {
                out.push(JobInfo {
                    job,
                    // Not split off (again): no job id of its own yet.
                    job_id: None,
                    ..info.clone()
                });
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::JobState;

    fn record(job: JobRef, state: JobState) -> JobInfo {
        JobInfo {
            job,
            job_id: match job {
                JobRef::Job(id) => Some(id),
                JobRef::Task { .. } => None,
            },
            name: "pool".into(),
            comment: String::new(),
            state,
            reason: Some("BeginTime".into()),
            nodes: None,
            exit_code: None,
            expected_start: None,
        }
    }

    fn task(array: u64, task: u32) -> JobRef {
        JobRef::Task {
            array: JobId::new(array),
            task,
        }
    }

    #[test]
    fn a_plain_record_with_an_arrays_id_is_its_tasks_not_listed_apart() {
        let plain = JobRef::Job(JobId::new(64));
        let listing = [
            record(plain, JobState::Pending),
            record(task(64, 2), JobState::Running),
        ];
        let expected = [task(64, 0), task(64, 1), task(64, 2)];
        let read = as_submitted(&listing, expected);
        let jobs: Vec<(JobRef, &JobState)> = read.iter().map(|i| (i.job, &i.state)).collect();
        assert_eq!(
            jobs,
            [
                (task(64, 0), &JobState::Pending),
                (task(64, 1), &JobState::Pending),
                (task(64, 2), &JobState::Running),
            ]
        );
        assert!(read
            .iter()
            .all(|i| i.reason.as_deref() == Some("BeginTime")));
        assert_eq!(read[0].job_id, None);
    }

    #[test]
    fn plain_jobs_the_pool_submitted_and_unknown_ids_stay_as_listed() {
        let listing = [
            record(JobRef::Job(JobId::new(7)), JobState::Running),
            record(JobRef::Job(JobId::new(9)), JobState::Pending),
        ];
        let expected = [JobRef::Job(JobId::new(7)), task(8, 0)];
        assert!(matches!(as_submitted(&listing, expected), Cow::Borrowed(_)));
    }
}
