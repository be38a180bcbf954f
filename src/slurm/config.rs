//! What a Slurm cluster says about its own scheduler (`scontrol show
//! config`): how many jobs one scheduling pass considers, whether passes
//! follow submissions at all, and how large an array may be. A pool sizes
//! and paces its submissions by these (see `cluster::pace`).

use std::time::Duration;

/// Slurm's scheduler settings that decide how fast submitted jobs start.
/// `Default` is Slurm's own defaults, what a site that sets nothing has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Jobs considered by a pass that an event (such as a submission)
    /// triggers: `default_queue_depth` (Slurm's default 100). Pending jobs
    /// beyond it wait for the periodic pass (`sched_interval`, 60 s) or
    /// backfill (`bf_interval`, 30 s).
    pub queue_depth: u32,
    /// `partition_job_depth`: jobs considered per partition in a pass
    /// (0 in Slurm: no limit, here `None`).
    pub partition_depth: Option<u32>,
    /// `defer`: no pass follows a submission, only the periodic ones.
    pub defer: bool,
    /// `batch_sched_delay` (default 3 s): how long Slurm may hold back the
    /// pass after a batch submission.
    pub batch_sched_delay: Duration,
    /// `sched_min_interval` (default 2 µs): the least time between passes.
    pub sched_min_interval: Duration,
    /// `MaxArraySize`: an array's indexes run from 0 to this minus one
    /// (default 1001).
    pub max_array_size: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            queue_depth: 100,
            partition_depth: None,
            defer: false,
            batch_sched_delay: Duration::from_secs(3),
            sched_min_interval: Duration::from_micros(2),
            max_array_size: 1001,
        }
    }
}

/// The largest figure taken from the configuration: a value beyond it is
/// a typo or an attack on our arithmetic, and is clamped.
const MAX_FIGURE: u64 = 10_000_000;

fn number(value: &str) -> Option<u64> {
    value.trim().parse::<u64>().ok().map(|n| n.min(MAX_FIGURE))
}

fn small(value: &str) -> Option<u32> {
    number(value).and_then(|n| u32::try_from(n).ok())
}

impl SchedulerConfig {
    /// Reads `scontrol show config` output; what it does not say, or says
    /// in a form not understood, keeps Slurm's default.
    pub fn parse(text: &str) -> SchedulerConfig {
        let mut config = SchedulerConfig::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key.trim() {
                "SchedulerParameters" => config.scheduler_parameters(value.trim()),
                "MaxArraySize" => {
                    if let Some(n) = small(value) {
                        config.max_array_size = n;
                    }
                }
                _ => {}
            }
        }
        config
    }

    /// Applies a `SchedulerParameters` value (`a=1,b,c=2` or `(null)`).
    fn scheduler_parameters(&mut self, value: &str) {
        for item in value.split(',') {
            let (name, setting) = match item.split_once('=') {
                Some((n, s)) => (n.trim(), Some(s)),
                None => (item.trim(), None),
            };
            match (name, setting) {
                ("defer", None) => self.defer = true,
                ("default_queue_depth", Some(s)) => {
                    if let Some(n) = small(s) {
                        self.queue_depth = n.max(1);
                    }
                }
                ("partition_job_depth", Some(s)) => {
                    self.partition_depth = small(s).filter(|n| *n > 0);
                }
                ("batch_sched_delay", Some(s)) => {
                    if let Some(n) = number(s) {
                        self.batch_sched_delay = Duration::from_secs(n);
                    }
                }
                ("sched_min_interval", Some(s)) => {
                    if let Some(n) = number(s) {
                        self.sched_min_interval = Duration::from_micros(n);
                    }
                }
                _ => {}
            }
        }
    }

    /// The most jobs one pass after a submission considers.
    pub fn pass_size(&self) -> u32 {
        match self.partition_depth {
            Some(p) => self.queue_depth.min(p),
            None => self.queue_depth,
        }
    }

    /// The most tasks one array may have.
    pub fn array_limit(&self) -> u32 {
        self.max_array_size.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_that_sets_nothing_has_slurms_defaults() {
        let text = "Configuration data as of 2026-11-27T15:00:00\n\
                    MaxArraySize            = 1001\n\
                    SchedulerParameters     = (null)\n\
                    SchedulerType           = sched/backfill\n";
        assert_eq!(SchedulerConfig::parse(text), SchedulerConfig::default());
        assert_eq!(SchedulerConfig::default().pass_size(), 100);
    }

    #[test]
    fn tuned_settings_are_read() {
        let text = "MaxArraySize = 5\n\
            SchedulerParameters = bf_interval=10,default_queue_depth=200,defer,batch_sched_delay=1,sched_min_interval=500000,partition_job_depth=50\n";
        let c = SchedulerConfig::parse(text);
        assert_eq!(c.queue_depth, 200);
        assert_eq!(c.partition_depth, Some(50));
        assert_eq!(c.pass_size(), 50);
        assert!(c.defer);
        assert_eq!(c.batch_sched_delay, Duration::from_secs(1));
        assert_eq!(c.sched_min_interval, Duration::from_millis(500));
        assert_eq!(c.array_limit(), 5);
    }

    #[test]
    fn nonsense_keeps_defaults_and_huge_figures_are_clamped() {
        let text = "SchedulerParameters = default_queue_depth=x,default_queue_depth=0,sched_min_interval=99999999999999999999999\nMaxArraySize = -3\n";
        let c = SchedulerConfig::parse(text);
        assert_eq!(c.queue_depth, 1);
        assert_eq!(c.max_array_size, 1001);
        assert_eq!(c.sched_min_interval, Duration::from_micros(2));
        let c = SchedulerConfig::parse("SchedulerParameters = sched_min_interval=999999999999");
        assert_eq!(c.sched_min_interval, Duration::from_secs(10));
    }
}
