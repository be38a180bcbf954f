//! What `drover doctor` found out about a site, gathered by `gather` and
//! read by `judge`, `network` and `suggest`.

use std::net::IpAddr;
use std::time::Duration;

use super::probe::Findings;
use crate::slurm::{JobRef, JobState, PartitionInfo, SiteInfo, TestVerdict, UserLimits};

/// Where the scheduler would listen, and why there.
#[derive(Debug, Clone)]
pub struct Address {
    pub ip: IpAddr,
    /// The local interface that holds it, if one does.
    pub interface: Option<String>,
    pub why: String,
}

/// How the probe job went.
#[derive(Debug, Clone)]
pub enum ProbeOutcome {
    /// It called back.
    Heard {
        job: JobRef,
        findings: Findings,
        after: Duration,
    },
    /// It ended without calling back; its log's findings, if readable.
    Ended {
        job: JobRef,
        state: JobState,
        exit_code: Option<i32>,
        findings: Option<Findings>,
        log: String,
    },
    /// It waited in the queue until the doctor gave up.
    Pending {
        job: JobRef,
        reason: Option<String>,
        waited: Duration,
    },
    /// It was not run, and why.
    NotRun(String),
}

/// Everything the doctor found out.
#[derive(Debug, Clone)]
pub struct Facts {
    /// How Slurm was reached.
    pub backend: String,
    /// What drover does differently on this release through this backend
    /// (`slurm::dialect`); empty when the release is not known.
    pub differences: Vec<&'static str>,
    pub site: Result<SiteInfo, String>,
    pub partitions: Result<Vec<PartitionInfo>, String>,
    pub limits: Result<Option<UserLimits>, String>,
    pub verdict: Result<TestVerdict, String>,
    pub address: Result<Address, String>,
    /// The address that routes to the partition's nodes, for fixes.
    pub routed: Option<Address>,
    pub probe: ProbeOutcome,
}
