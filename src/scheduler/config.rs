//! `SchedulerConfig`: where a scheduler listens and how it keeps time with
//! its workers. Defaults from `new`; `[pool]` settings applied by `with`.

use std::net::IpAddr;
use std::time::Duration;

use super::serve::ConnectionLimits;
use crate::config::{duration_at_least, PoolOptions, SpecError, ValueError};

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
    /// Serve TLS with a per-cluster certificate (the default). Plain HTTP
    /// shows the token to anyone on the network: for measurements only.
    pub tls: bool,
    /// Connections open at once; `None`: from the open-file limit.
    pub max_connections: Option<usize>,
    /// Connections open at once from one address; `None`: a sixteenth of
    /// `max_connections`, at least 64.
    pub max_connections_per_peer: Option<usize>,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a request's headers, which also bounds how long a
    /// connection may sit idle; `None`: 30 s, or two heartbeats if longer.
    pub connection_idle_timeout: Option<Duration>,
    /// Bytes of finished tasks' output kept in memory; older output is
    /// spilled to a private directory.
    pub max_output_memory: u64,
    /// How much more memory a task killed for memory asks for next time.
    pub task_memory_growth: crate::config::MemoryGrowth,
    /// Where every change is made durable before it is acknowledged; a
    /// scheduler started on an existing journal continues from it (same
    /// address when it can, same credentials, its tasks and workers).
    pub journal: Option<std::path::PathBuf>,
    /// Bytes the journal grows by before it is rewritten as a snapshot
    /// (and at least as many as the last snapshot has).
    pub journal_compact_after: u64,
    /// How often an open status page is brought up to date.
    pub page_refresh: Duration,
    /// How often the status page's timeline samples the pool.
    pub timeline_interval: Duration,
    /// Keep what the pool cost and used (the tasks' busy time; the pool
    /// reads its jobs' allocations); `false` keeps neither, and the
    /// report says accounting is off.
    pub accounting: bool,
}

/// Default growth of the journal before it is compacted.
pub const DEFAULT_JOURNAL_COMPACT_AFTER: u64 = 64 << 20;

/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default count of missed heartbeats before a worker is lost.
pub const DEFAULT_MISSED_HEARTBEATS: u32 = 3;
/// Default bound on polls held open at once. A held poll costs memory (a
/// TLS connection's buffers, about 39 KiB); one not held costs a TLS
/// handshake every interval, which at thousands of workers takes a core
/// (docs/BENCHMARKS.md): memory is the cheaper of the two.
pub const DEFAULT_MAX_HELD_POLLS: usize = 16_384;
/// How much longer than the usual bound a worker not heard from since it
/// registered (or since the scheduler restarted from its journal) is
/// given, for each worker awaited alike, before it is declared lost:
/// they all connect at once, and 10,000 TLS sessions took 24 s to come
/// back on 2 cores in a debug build (integration/load.rs), against a
/// usual bound of 15 s. 10,000 awaited workers get 50 s more.
pub const RETURN_GRACE_PER_WORKER: Duration = Duration::from_millis(5);
/// Default time for a TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open files kept back from connections (logs, Slurm commands, spills).
const RESERVED_FILES: u64 = 64;
/// The most connections a scheduler takes by default, however many files
/// it may open.
const MAX_CONNECTIONS_CEILING: usize = 262_144;

impl SchedulerConfig {
    /// The defaults, listening on `bind`.
    pub fn new(bind: Bind) -> Self {
        SchedulerConfig {
            bind,
            port: 0,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            missed_heartbeats: DEFAULT_MISSED_HEARTBEATS,
            max_held_polls: DEFAULT_MAX_HELD_POLLS,
            tls: true,
            max_connections: None,
            max_connections_per_peer: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connection_idle_timeout: None,
            max_output_memory: crate::tasks::outputs::DEFAULT_MAX_OUTPUT_MEMORY,
            task_memory_growth: crate::config::MemoryGrowth::default(),
            journal: None,
            journal_compact_after: DEFAULT_JOURNAL_COMPACT_AFTER,
            page_refresh: Duration::from_secs(2),
            timeline_interval: Duration::from_secs(10),
            accounting: true,
        }
    }

    /// The connection bounds, given the process's open-file limit.
    pub fn limits(&self, open_files: u64) -> ConnectionLimits {
        let by_files =
            usize::try_from(open_files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| by_files.clamp(16, MAX_CONNECTIONS_CEILING));
        ConnectionLimits {
            max_connections,
            max_per_peer: self
                .max_connections_per_peer
                .unwrap_or((max_connections / 16).max(64)),
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.connection_idle_timeout.unwrap_or_else(|| {
                Duration::from_secs(30).max(self.heartbeat_interval.saturating_mul(2))
            }),
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
        if pool.max_connections.is_some() {
            self.max_connections = pool.max_connections;
        }
        if pool.max_connections_per_peer.is_some() {
            self.max_connections_per_peer = pool.max_connections_per_peer;
        }
        if let Some(t) = pool.handshake_timeout {
            self.handshake_timeout = t.duration();
        }
        if let Some(m) = pool.max_output_memory {
            self.max_output_memory = m.bytes();
        }
        if let Some(g) = pool.task_memory_growth {
            self.task_memory_growth = g;
        }
        if let Some(m) = pool.journal_compact_after {
            self.journal_compact_after = m.bytes();
        }
        if let Some(t) = pool.connection_idle_timeout {
            self.connection_idle_timeout = Some(t.duration());
        }
        if let Some(t) = pool.page_refresh {
            self.page_refresh = t.duration();
        }
        if let Some(t) = pool.timeline_interval {
            self.timeline_interval = t.duration();
        }
        if let Some(on) = pool.accounting {
            self.accounting = on;
        }
        self.validated()
    }

    /// This config, or the setting that cannot work.
    pub fn validated(self) -> Result<Self, SpecError> {
        duration_at_least("heartbeat-interval", self.heartbeat_interval, 10)?;
        duration_at_least("page-refresh", self.page_refresh, 100)?;
        duration_at_least("timeline-interval", self.timeline_interval, 100)?;
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
        if let Some(idle) = self.connection_idle_timeout {
            if idle <= self.heartbeat_interval {
                return Err(SpecError::invalid(
                    "connection-idle-timeout",
                    ValueError::new(
                        &format!("{idle:?}"),
                        "it is not longer than the heartbeat interval, so held polls would be cut",
                        "a duration longer than heartbeat-interval, such as `30s`",
                    ),
                ));
            }
        }
        if self.max_connections == Some(0) || self.max_connections_per_peer == Some(0) {
            return Err(SpecError::invalid(
                "max-connections",
                ValueError::new("0", "no worker could connect", "a whole number from 1 up"),
            ));
        }
        Ok(self)
    }

    /// Timeline samples kept: the last 6 hours' worth, at most 20,000.
    pub fn timeline_samples(&self) -> usize {
        let six_hours = Duration::from_secs(6 * 3600).as_millis();
        let every = self.timeline_interval.as_millis().max(1);
        usize::try_from(six_hours / every)
            .unwrap_or(20_000)
            .clamp(60, 20_000)
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
