//! `SchedulerConfig`: where a scheduler listens and how it keeps time with
//! its workers. Defaults from `new`; `[pool]` settings applied by `with`.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{PoolOptions, SpecError, ValueError};

/// Where the scheduler listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// The IPv4 address of this interface (e.g. `ib0`).
    Interface(String),
    /// This address.
    Host(IpAddr),
    /// Nothing was named: an address the workers reach. A pool works it
    /// out from the nodes of its partition; a standalone scheduler takes
    /// the host name's address (else loopback).
    Auto,
}

impl Bind {
    /// Where a pool's scheduler listens: the `[pool]` host or interface,
    /// else the workers' interface (the driver's side of the same
    /// network), else `Auto`.
    pub fn for_pool(pool: &PoolOptions, worker_interface: Option<&str>) -> Bind {
        match (
            pool.scheduler_host,
            &pool.scheduler_interface,
            worker_interface,
        ) {
            (Some(h), _, _) => Bind::Host(h),
            (None, Some(i), _) => Bind::Interface(i.clone()),
            (None, None, Some(i)) => Bind::Interface(i.to_string()),
            (None, None, None) => Bind::Auto,
        }
    }
}

/// How a scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Where to listen.
    pub bind: Bind,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// How often workers poll, which is their heartbeat.
    pub heartbeat_interval: Duration,
    /// How many intervals of silence make a worker lost (at least 2).
    pub missed_heartbeats: u32,
    /// How many polls the scheduler holds open at once. Each held poll is a
    /// connection with its buffers; workers beyond this poll once per
    /// interval without holding one.
    pub max_held_polls: usize,
}

/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default count of missed heartbeats before a worker is lost.
pub const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
/// Default bound on polls held open at once.
pub const DEFAULT_MAX_HELD_POLLS: usize = 1024;

impl SchedulerConfig {
    /// The defaults, listening on `bind`.
    pub fn new(bind: Bind) -> Self {
        SchedulerConfig {
            bind,
            port: 0,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            missed_heartbeats: DEFAULT_MISSED_HEARTBEATS,
            max_held_polls: DEFAULT_MAX_HELD_POLLS,
        }
    }

    /// This config with the heartbeat settings `pool` holds, checked.
    pub fn with(mut self, pool: &PoolOptions) -> Result<Self, SpecError> {
        if let Some(t) = pool.heartbeat_interval {
            self.heartbeat_interval = t.duration();
        }
        if let Some(n) = pool.missed_heartbeats {
            self.missed_heartbeats = n;
        }
        if let Some(n) = pool.max_held_polls {
            self.max_held_polls = n;
        }
        self.validated()
    }

    /// This config, or the setting that cannot work.
    pub fn validated(self) -> Result<Self, SpecError> {
        if self.heartbeat_interval < Duration::from_millis(10) {
            return Err(SpecError::invalid(
                "heartbeat-interval",
                ValueError::new(
                    &format!("{:?}", self.heartbeat_interval),
                    "it is shorter than 10 ms",
                    "a duration of 10 ms or more, such as `5s`",
                ),
            ));
        }
        if self.missed_heartbeats < 2 {
            return Err(SpecError::invalid(
                "missed-heartbeats",
                ValueError::new(
                    &self.missed_heartbeats.to_string(),
                    "it must be 2 or more, so one late poll does not lose a worker",
                    "a whole number from 2 up",
                ),
            ));
        }
        Ok(self)
    }

    /// How long a worker may be silent before it is lost.
    pub fn lost_after(&self) -> Duration {
        self.heartbeat_interval
            .saturating_mul(self.missed_heartbeats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_listens_where_it_is_told_else_finds_out() {
        let mut pool = PoolOptions::default();
        assert_eq!(Bind::for_pool(&pool, None), Bind::Auto);
        assert_eq!(
            Bind::for_pool(&pool, Some("ib0")),
            Bind::Interface("ib0".into())
        );
        pool.scheduler_interface = Some("drvbr0".into());
        assert_eq!(
            Bind::for_pool(&pool, Some("ib0")),
            Bind::Interface("drvbr0".into())
        );
        pool.scheduler_host = Some("10.77.0.1".parse().unwrap());
        assert_eq!(
            Bind::for_pool(&pool, Some("ib0")),
            Bind::Host("10.77.0.1".parse().unwrap())
        );
    }
}
