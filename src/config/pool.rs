//! `PoolOptions`: how a pool runs, as opposed to what each of its jobs is.
//! Every setting optional, so the `[pool]` table of a config file, the
//! `DROVER_*` environment (see `env`) and command-line flags layer the same
//! way `JobOptions` do, before one validation applies them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Timeout, ValueError};

/// An adaptive range of workers, `MIN:MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdaptRange {
    /// The fewest workers.
    pub min: usize,
    /// The most workers.
    pub max: usize,
}

/// The forms `AdaptRange` accepts, quoted in every parse error.
pub const ADAPT_FORMS: &str = "MIN:MAX worker counts with MIN <= MAX and MAX >= 1, such as 0:8";

impl FromStr for AdaptRange {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ValueError::new(s, reason, ADAPT_FORMS);
        let (a, b) = s.split_once(':').ok_or_else(|| bad("it has no `:`"))?;
        let count = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| bad("a count is not a whole number"))
        };
        let (min, max) = (count(a)?, count(b)?);
        if min > max {
            return Err(bad("MIN is above MAX"));
        }
        if max == 0 {
            return Err(bad("MAX is 0"));
        }
        Ok(AdaptRange { min, max })
    }
}

impl TryFrom<String> for AdaptRange {
    type Error = ValueError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AdaptRange> for String {
    fn from(r: AdaptRange) -> String {
        format!("{}:{}", r.min, r.max)
    }
}

/// What a pool does with a job Slurm holds after its launch failed
/// (`launch failed requeued held`: a node's prolog failed, say), which
/// would otherwise pend forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeldJobs {
    /// Release it once (`scontrol release`): Slurm has drained the node
    /// that failed, so it starts elsewhere; held again, it is replaced.
    #[default]
    Release,
    /// Cancel it and submit a replacement at once.
    Replace,
}

/// How a pool runs. Keys in kebab-case, as in `[pool]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PoolOptions {
    /// Workers to start.
    pub workers: Option<usize>,
    /// Size the pool to its work between MIN and MAX workers instead.
    pub adapt: Option<AdaptRange>,
    /// How long `drover run` and `cluster up` wait for the workers.
    pub wait_timeout: Option<Timeout>,
    /// Submit many workers as one job array (default true).
    pub arrays: Option<bool>,
    /// The interface the scheduler listens on.
    pub scheduler_interface: Option<String>,
    /// The address the scheduler listens on.
    pub scheduler_host: Option<IpAddr>,
    /// With `adapt`: retire workers idle this long.
    pub idle_timeout: Option<Timeout>,
    /// With `adapt`: wait this long before reversing direction.
    pub adapt_cooldown: Option<Timeout>,
    /// In a pool with groups: once a group's jobs have pended this long,
    /// its ready tasks count for a later group that could run them.
    pub spill_after: Option<Timeout>,
    /// Submit a replacement this long before a worker leaves for its time
    /// limit, on top of the last observed start-up time.
    pub replace_lead: Option<Timeout>,
    /// At most this many of the pool's jobs pending at once.
    pub max_pending_jobs: Option<usize>,
    /// At most this many jobs submitted in any minute.
    pub max_submit_rate: Option<usize>,
    /// How often Slurm is asked about the pool's jobs.
    pub poll_interval: Option<Timeout>,
    /// How often, while a submitted chunk waits for Slurm's pass.
    pub pass_poll_interval: Option<Timeout>,
    /// The first wait after a failed start or a limit, doubling.
    pub retry_backoff: Option<Timeout>,
    /// How long `close` waits for retiring workers before cancelling.
    pub close_timeout: Option<Timeout>,
    /// Start-up failures in a row after which submitting stops.
    pub max_startup_failures: Option<u32>,
    /// What to do with a job Slurm holds after a failed launch.
    pub held_jobs: Option<HeldJobs>,
    /// How much more memory a task killed for memory asks for next time.
    pub task_memory_growth: Option<crate::config::MemoryGrowth>,
    /// How much more memory a group's next jobs ask for after one of its
    /// jobs ended OUT_OF_MEMORY.
    pub job_memory_growth: Option<crate::config::MemoryGrowth>,
    /// In a pool with groups: preemptions of a group's jobs within the
    /// last hour it tolerates before its work spills to the next group.
    pub preemptions_tolerated: Option<u32>,
    /// How long a pool's Dask scheduler may take to start.
    pub dask_start_timeout: Option<Timeout>,
    /// How often a pool reads its jobs' allocations from Slurm's
    /// accounting (what it cost).
    pub accounting_interval: Option<Timeout>,
    /// Keep what the pool cost and used (default true).
    pub accounting: Option<bool>,
    /// With `--ssh`: how long opening the connection to the login node may
    /// take, a password or second factor typed included.
    pub ssh_connect_timeout: Option<Timeout>,
    /// With `--ssh`: how long a pool whose driver vanished (its ssh
    /// connection gone without a close) is kept for one to attach again.
    pub remote_grace: Option<Timeout>,
    /// With `kind = "dask"`: attach to this Dask scheduler file instead.
    pub dask_scheduler_file: Option<PathBuf>,
    /// How often workers heartbeat.
    pub heartbeat_interval: Option<Timeout>,
    /// Missed heartbeats before a worker is declared lost.
    pub missed_heartbeats: Option<u32>,
    /// Polls the scheduler holds open at once.
    pub max_held_polls: Option<usize>,
    /// The limit on one Slurm command.
    pub slurm_timeout: Option<Timeout>,
    /// Which of Slurm's interfaces to use: its commands, or slurmrestd.
    pub slurm_api: Option<super::SlurmApi>,
    /// Where slurmrestd answers, with `slurm-api = "rest"`.
    pub slurmrestd: Option<super::RestEndpoint>,
    /// A file holding the JWT for slurmrestd (instead of `SLURM_JWT`);
    /// re-read when it changes, so a refreshed token is picked up.
    pub slurm_jwt_file: Option<PathBuf>,
    /// Connections the scheduler keeps open at once (default: from the
    /// open-file limit).
    pub max_connections: Option<usize>,
    /// Connections the scheduler keeps open at once from one address.
    pub max_connections_per_peer: Option<usize>,
    /// Time for a TLS handshake with the scheduler.
    pub handshake_timeout: Option<Timeout>,
    /// Time for a request's headers, and the longest a connection idles.
    pub connection_idle_timeout: Option<Timeout>,
    /// Bytes of finished tasks' output the scheduler keeps in memory; the
    /// rest is spilled to its private directory.
    pub max_output_memory: Option<crate::config::Memory>,
    /// Make the pool's every change durable here first; a pool started on
    /// it again continues it (its scheduler, tasks, workers, jobs, size).
    pub journal: Option<PathBuf>,
    /// With `journal`: how long a dead driver's jobs are kept for a pool
    /// to come back on the journal before they are cancelled.
    pub reattach_grace: Option<Timeout>,
    /// With `journal`: rewrite it as a snapshot once it has grown by this
    /// much (and by at least the last snapshot's size).
    pub journal_compact_after: Option<crate::config::Memory>,
    /// How often an open status page is brought up to date.
    pub page_refresh: Option<Timeout>,
    /// How often the status page's timeline takes a sample of the pool.
    pub timeline_interval: Option<Timeout>,
}

macro_rules! overlay_pool {
    ($low:ident, $high:ident; $($field:ident),* $(,)?) => {
        PoolOptions { $($field: $high.$field.or($low.$field)),* }
    };
}

impl PoolOptions {
    /// These options with every field that `higher` sets replaced by its value.
    pub fn overlay(self, higher: PoolOptions) -> PoolOptions {
        let low = self;
        overlay_pool!(low, higher;
            workers, adapt, wait_timeout, arrays, scheduler_interface, scheduler_host,
            idle_timeout, adapt_cooldown, spill_after, replace_lead, max_pending_jobs, max_submit_rate,
            poll_interval, pass_poll_interval, retry_backoff, close_timeout, max_startup_failures,
            held_jobs, preemptions_tolerated, task_memory_growth, job_memory_growth, dask_start_timeout, accounting_interval, accounting, ssh_connect_timeout, remote_grace, dask_scheduler_file, heartbeat_interval, missed_heartbeats,
            max_held_polls, slurm_timeout, slurm_api, slurmrestd, slurm_jwt_file, max_connections, max_connections_per_peer,
            handshake_timeout, connection_idle_timeout, max_output_memory, journal, reattach_grace,
            journal_compact_after, page_refresh, timeline_interval,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapt_ranges_parse_and_say_what_is_wrong() {
        assert_eq!(
            "0:8".parse::<AdaptRange>().unwrap(),
            AdaptRange { min: 0, max: 8 }
        );
        for (bad, why) in [
            ("8", "no `:`"),
            ("4:2", "MIN is above MAX"),
            ("0:0", "MAX is 0"),
            ("a:2", "whole number"),
        ] {
            let e = bad.parse::<AdaptRange>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("such as 0:8"), "{bad}: {e}");
        }
    }

    #[test]
    fn higher_layers_win_field_by_field() {
        let low = PoolOptions {
            workers: Some(2),
            idle_timeout: Some("30s".parse().unwrap()),
            ..Default::default()
        };
        let high = PoolOptions {
            workers: Some(8),
            ..Default::default()
        };
        let both = low.overlay(high);
        assert_eq!(both.workers, Some(8));
        assert_eq!(both.idle_timeout, Some("30s".parse().unwrap()));
    }
}
