//! The pool over time, for the page's chart: a sample every interval
//! (jobs pending and running, workers, tasks running and ended), the
//! newest few thousand kept, older ones dropped.

use std::collections::VecDeque;

use crate::protocol::{ClusterStatus, Sample, TaskCounts};
use crate::slurm::JobState;

/// The samples, oldest first, at most `cap` of them.
pub(crate) struct Timeline {
    samples: VecDeque<Sample>,
    cap: usize,
}

impl Timeline {
    pub fn new(cap: usize) -> Self {
        Timeline {
            samples: VecDeque::with_capacity(cap.min(4096)),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, s: Sample) {
        while self.samples.len() >= self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub fn all(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }

    /// Tasks ended per minute between the sample about `window_ms` before
    /// `now` (or the oldest) and `now`; `None` before two samples span a
    /// second.
    pub fn rate_per_minute(&self, now: &Sample, window_ms: u64) -> Option<f64> {
        let since = now.at_ms.saturating_sub(window_ms);
        let then = self
            .samples
            .iter()
            .find(|s| s.at_ms >= since)
            .or(self.samples.front())?;
        let span = now.at_ms.checked_sub(then.at_ms)?;
        if span < 1000 {
            return None;
        }
        let ended = now.tasks_ended.saturating_sub(then.tasks_ended);
        Some(ended as f64 * 60_000.0 / span as f64)
    }
}

/// What the pool is at `at_ms`: its jobs (none for a bare scheduler), its
/// live workers and its tasks.
pub(crate) fn sample(
    at_ms: u64,
    cluster: Option<&ClusterStatus>,
    workers: usize,
    tasks: &TaskCounts,
    (cores, busy_cores): (u64, u64),
) -> Sample {
    let count =
        |state: JobState| cluster.map_or(0, |c| c.jobs.iter().filter(|j| j.state == state).count());
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Sample {
        at_ms,
        pending: small(count(JobState::Pending)),
        running: small(count(JobState::Running)),
        workers: small(workers),
        tasks_running: small(tasks.running),
        tasks_ended: (tasks.succeeded + tasks.failed + tasks.cancelled) as u64,
        cores: u32::try_from(cores).unwrap_or(u32::MAX),
        busy_cores: u32::try_from(busy_cores.min(cores)).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: u64, tasks_ended: u64) -> Sample {
        Sample {
            at_ms,
            tasks_ended,
            ..Default::default()
        }
    }

    #[test]
    fn the_oldest_samples_go_first() {
        let mut t = Timeline::new(3);
        for i in 0..5 {
            t.push(at(i * 1000, 0));
        }
        let kept: Vec<u64> = t.all().iter().map(|s| s.at_ms).collect();
        assert_eq!(kept, [2000, 3000, 4000]);
    }

    #[test]
    fn the_rate_is_over_the_window_or_what_there_is() {
        let mut t = Timeline::new(100);
        assert_eq!(t.rate_per_minute(&at(0, 0), 60_000), None);
        for i in 0..=12 {
            t.push(at(i * 10_000, i * 50));
        }
        // From 60 s to 120 s: 300 tasks in a minute.
        let now = *t.all().last().unwrap();
        assert_eq!(t.rate_per_minute(&now, 60_000), Some(300.0));
        // A window longer than the timeline takes all of it.
        assert_eq!(t.rate_per_minute(&now, 3_600_000), Some(300.0));
    }

    #[test]
    fn a_sample_counts_jobs_by_state_and_the_cores_in_use() {
        let tasks = TaskCounts {
            running: 2,
            succeeded: 5,
            failed: 1,
            ..Default::default()
        };
        let s = sample(7, None, 3, &tasks, (12, 4));
        assert_eq!((s.pending, s.running, s.workers), (0, 0, 3));
        assert_eq!((s.tasks_running, s.tasks_ended), (2, 6));
        assert_eq!((s.cores, s.busy_cores), (12, 4));
        // Held cores beyond what the workers have (a report racing a
        // departure) are at most all of them.
        assert_eq!(sample(7, None, 3, &tasks, (2, 4)).busy_cores, 2);
    }
}
