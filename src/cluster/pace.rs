//! Pacing submissions to Slurm's scheduling passes (pure decisions).
//!
//! A submission makes Slurm run a scheduling pass (after at most
//! `batch_sched_delay`), and that pass considers only the first
//! `default_queue_depth` pending jobs (100 by default); the rest wait for
//! the periodic pass or backfill, tens of seconds later. Measured on the
//! local Slurm (docs/BENCHMARKS.md): one array of 128 trivial jobs took
//! 23-27 s to start at the defaults; 100 and then, once the 100 had been
//! through their pass, 28 more took 3.7-6.0 s. So a pool submits in
//! chunks of at most one pass's depth, and submits the next chunk once the
//! previous one has been through a pass: none of its jobs is still pending
//! unconsidered (squeue's reason `None`), or, should the pass not show,
//! once a pass must have run (`batch_sched_delay` + `sched_min_interval` +
//! a second). With `defer`, no pass follows a submission: everything goes
//! at once, as large arrays as the site allows.

use tokio::time::{Duration, Instant};

use crate::slurm::{JobInfo, JobRef, JobState, SchedulerConfig};

/// Slack on top of Slurm's own delays before a chunk's pass is assumed.
const PASS_SLACK: Duration = Duration::from_secs(1);

/// Where the submissions of a pool stand against Slurm's passes.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: SchedulerConfig,
    /// The last chunk submitted, until it has been through a pass.
    waiting: Option<Chunk>,
    /// The most tasks an array may have, once Slurm refused a larger one
    /// (slurmrestd does not say `MaxArraySize`).
    learned_array_size: Option<u32>,
    /// Whether the last decision held jobs back.
    held_back: bool,
}

#[derive(Debug, Clone)]
struct Chunk {
    jobs: Vec<JobRef>,
    at: Instant,
}

impl Pacer {
    pub fn new(config: SchedulerConfig) -> Pacer {
        Pacer {
            config,
            waiting: None,
            learned_array_size: None,
            held_back: false,
        }
    }

    /// The most jobs submitted in one round: one pass's depth, or all of
    /// them with `defer`.
    pub fn chunk(&self) -> usize {
        match self.config.defer {
            true => usize::MAX,
            false => self.config.pass_size().max(1) as usize,
        }
    }

    /// The most tasks in one array: the site's `MaxArraySize`, or fewer
    /// once an array was refused for its size.
    pub fn array_size(&self) -> usize {
        let site = self.config.array_limit();
        self.learned_array_size.map_or(site, |l| l.min(site)).max(1) as usize
    }

    /// Slurm refused an array of `tasks` for its size: arrays are at most
    /// half that from now on.
    pub fn array_refused(&mut self, tasks: usize) {
        let half = u32::try_from(tasks / 2).unwrap_or(u32::MAX).max(1);
        tracing::info!(
            refused = tasks,
            now = half,
            "Slurm refused an array that large; smaller arrays from now on"
        );
        self.learned_array_size = Some(self.learned_array_size.map_or(half, |l| l.min(half)));
    }

    /// Longest wait for a chunk's pass before it is assumed.
    fn pass_wait(&self) -> Duration {
        self.config.batch_sched_delay + self.config.sched_min_interval + PASS_SLACK
    }

    /// How many of the `wanted` jobs to submit now, given the pool's jobs
    /// as Slurm last listed them (`None` when it did not answer).
    pub fn allow(&mut self, wanted: usize, listing: Option<&[JobInfo]>, now: Instant) -> usize {
        if let Some(chunk) = &self.waiting {
            let unconsidered = match listing {
                Some(jobs) => jobs.iter().any(|j| {
                    j.state == JobState::Pending
                        && j.reason.is_none()
                        && chunk.jobs.contains(&j.job)
                }),
                None => true,
            };
            if unconsidered && now.duration_since(chunk.at) < self.pass_wait() {
                self.held_back = wanted > 0;
                return 0;
            }
            self.waiting = None;
        }
        let n = wanted.min(self.chunk());
        self.held_back = n < wanted;
        n
    }

    /// Records what was just submitted (the jobs of one chunk).
    pub fn submitted(&mut self, jobs: Vec<JobRef>, now: Instant) {
        if self.config.defer || jobs.is_empty() {
            return;
        }
        self.waiting = Some(Chunk { jobs, at: now });
    }

    /// Whether jobs wait for a pass: the pool should look again soon.
    pub fn pacing(&self) -> bool {
        self.held_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::JobId;

    fn task(array: u64, task: u32, reason: Option<&str>, state: JobState) -> JobInfo {
        JobInfo {
            job: JobRef::Task {
                array: JobId::new(array),
                task,
            },
            job_id: None,
            name: "w".into(),
            comment: String::new(),
            state,
            reason: reason.map(Into::into),
            nodes: None,
            exit_code: None,
            expected_start: None,
        }
    }

    fn refs(array: u64, n: u32) -> Vec<JobRef> {
        (0..n)
            .map(|task| JobRef::Task {
                array: JobId::new(array),
                task,
            })
            .collect()
    }

    #[test]
    fn chunks_are_one_pass_deep_and_the_next_waits_for_the_pass() {
        let mut p = Pacer::new(SchedulerConfig::default());
        let t0 = Instant::now();
        assert_eq!(p.allow(256, Some(&[]), t0), 100);
        assert!(p.pacing());
        p.submitted(refs(1, 100), t0);
        // Not yet considered: hold the rest back.
        let fresh: Vec<JobInfo> = (0..100)
            .map(|i| task(1, i, None, JobState::Pending))
            .collect();
        assert_eq!(
            p.allow(156, Some(&fresh), t0 + Duration::from_millis(500)),
            0
        );
        assert!(p.pacing());
        // Slurm did not answer: still held back.
        assert_eq!(p.allow(156, None, t0 + Duration::from_millis(700)), 0);
        // The pass ran: started, or waiting with a reason.
        let mut passed: Vec<JobInfo> = (0..90)
            .map(|i| task(1, i, None, JobState::Running))
            .collect();
        passed.extend((90..100).map(|i| task(1, i, Some("Resources"), JobState::Pending)));
        assert_eq!(
            p.allow(156, Some(&passed), t0 + Duration::from_secs(1)),
            100
        );
        p.submitted(refs(2, 100), t0 + Duration::from_secs(1));
        // Other jobs' unconsidered state does not hold this chunk.
        let other = [task(1, 99, None, JobState::Pending)];
        assert_eq!(p.allow(56, Some(&other), t0 + Duration::from_secs(2)), 56);
        assert!(!p.pacing());
    }

    #[test]
    fn a_pass_that_never_shows_is_assumed_after_slurms_own_delays() {
        let mut p = Pacer::new(SchedulerConfig::default());
        let t0 = Instant::now();
        assert_eq!(p.allow(150, None, t0), 100);
        p.submitted(refs(1, 100), t0);
        let stuck: Vec<JobInfo> = (0..100)
            .map(|i| task(1, i, None, JobState::Pending))
            .collect();
        // batch_sched_delay 3 s + 1 s slack.
        assert_eq!(
            p.allow(50, Some(&stuck), t0 + Duration::from_millis(3900)),
            0
        );
        assert_eq!(
            p.allow(50, Some(&stuck), t0 + Duration::from_millis(4001)),
            50
        );
    }

    #[test]
    fn site_settings_size_the_chunks() {
        let deep = SchedulerConfig {
            queue_depth: 200,
            ..Default::default()
        };
        assert_eq!(Pacer::new(deep).chunk(), 200);
        let small_arrays = SchedulerConfig {
            max_array_size: 5,
            ..Default::default()
        };
        // A pass takes several small arrays.
        let mut p = Pacer::new(small_arrays);
        assert_eq!((p.chunk(), p.array_size()), (100, 5));
        p.array_refused(4);
        assert_eq!(p.array_size(), 2, "learned below the site's");
        let mut p = Pacer::new(SchedulerConfig::default());
        assert_eq!(p.array_size(), 1001);
        p.array_refused(12);
        p.array_refused(1);
        assert_eq!(p.array_size(), 1);
        let partition = SchedulerConfig {
            partition_depth: Some(40),
            ..Default::default()
        };
        assert_eq!(Pacer::new(partition).chunk(), 40);
        // With defer no pass follows a submission: all at once, no waiting.
        let defer = SchedulerConfig {
            defer: true,
            ..Default::default()
        };
        let mut p = Pacer::new(defer);
        let t0 = Instant::now();
        assert_eq!(p.allow(256, None, t0), 256);
        p.submitted(refs(1, 256), t0);
        assert_eq!(p.allow(10, None, t0), 10);
    }
}
