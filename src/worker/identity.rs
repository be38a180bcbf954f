//! Who a worker is: its Slurm job, node, address, cores, memory and the end
//! of its allocation, from Slurm's environment with the machine as fallback.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::Memory;
use crate::protocol::{RegisterRequest, SlurmPlacement};
use crate::slurm::{JobId, JobRef, Slurm, SlurmCli};

use super::{AgentError, WorkerArgs};

/// A worker's identity, as it registers.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its name.
    pub name: String,
    /// Its place in Slurm.
    pub slurm: SlurmPlacement,
    /// Its node's hostname.
    pub hostname: String,
    /// Its address on the interface.
    pub address: IpAddr,
    /// The interface, when one was named.
    pub interface: Option<String>,
    /// Cores for this worker.
    pub cores: u32,
    /// Memory for this worker.
    pub memory: Memory,
    /// End of the allocation, Unix seconds.
    pub allocation_end: Option<u64>,
    /// When to stop taking tasks and leave, Unix milliseconds: the walltime
    /// margin before the end, less this job's share of the stagger.
    pub drain_at_ms: Option<u64>,
    /// The job's index in its pool (`DROVER_JOB_INDEX_BASE` plus the array
    /// task id), when a pool submitted it.
    pub job_index: Option<u64>,
    /// The process's index in its job, and how many the job runs.
    pub process: (u32, u32),
    /// The name of the Dask worker this agent stands for, in `dask` jobs.
    pub dask_name: Option<String>,
    /// Its GPUs, named resources and group.
    pub offer: crate::protocol::Offer,
}

/// A fraction in [0, 1) that spreads jobs evenly whatever their ids:
/// consecutive ids land far apart (Fibonacci hashing).
fn spread(job: u64) -> f64 {
    let h = job.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// When a worker whose allocation ends at `end_s` leaves: `margin` before
/// the end, less `stagger` times the job's spread.
pub fn drain_at_ms(end_s: u64, margin: Duration, stagger: Duration, job: u64) -> Option<u64> {
    if margin.is_zero() {
        return None;
    }
    let early = margin + stagger.mul_f64(spread(job));
    Some((end_s * 1000).saturating_sub(early.as_millis() as u64))
}

/// The variable through which a pool gives each job its index.
pub const JOB_INDEX_BASE: &str = "DROVER_JOB_INDEX_BASE";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Slurm's `SLURM_*` variables, or nothing outside a job.
pub fn placement() -> SlurmPlacement {
    SlurmPlacement {
        job_id: env_u64("SLURM_JOB_ID"),
        array_job_id: env_u64("SLURM_ARRAY_JOB_ID"),
        array_task_id: env_u64("SLURM_ARRAY_TASK_ID"),
        step_id: env_u64("SLURM_STEP_ID"),
    }
}

/// The address this host would use to reach `scheduler_url`'s host.
fn route_address(scheduler_url: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(scheduler_url).ok()?;
    let host: IpAddr = url.host_str()?.trim_matches(['[', ']']).parse().ok()?;
    crate::net::route_to(host)
}

impl Identity {
    /// Works out this worker's identity from `args`, Slurm's environment and
    /// the machine.
    pub async fn detect(args: &WorkerArgs, scheduler_url: &str) -> Result<Identity, AgentError> {
        let slurm = placement();
        let hostname = sysinfo::System::host_name().unwrap_or_else(|| "unknown".into());
        let address = match &args.interface {
            Some(name) => IpAddr::V4(crate::net::interface_ipv4(name)?),
            None => route_address(scheduler_url).unwrap_or(IpAddr::from([127, 0, 0, 1])),
        };
        let cores = args
            .cores
            .or_else(|| env_u64("SLURM_CPUS_PER_TASK").map(|c| c as u32))
            .or_else(|| env_u64("SLURM_CPUS_ON_NODE").map(|c| c as u32))
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
            });
        let memory = args
            .memory
            .or_else(|| env_u64("SLURM_MEM_PER_NODE").map(Memory::from_mib))
            .or_else(|| {
                env_u64("SLURM_MEM_PER_CPU")
                    .map(|m| Memory::from_mib(m.saturating_mul(u64::from(cores))))
            })
            .unwrap_or_else(|| {
                let mut sys = sysinfo::System::new();
                sys.refresh_memory();
                Memory::from_bytes(sys.total_memory())
            });
        let name = args.name.clone().unwrap_or_else(|| match slurm.job_id {
            Some(_) => match env_u64("SLURM_NTASKS")
                .filter(|n| *n > 1)
                .and(env_u64("SLURM_PROCID"))
            {
                Some(rank) if slurm.step_id.is_some() => format!("{slurm}/{rank}"),
                _ => slurm.to_string(),
            },
            None => format!("{hostname}-{}", std::process::id()),
        });
        let job = match (slurm.array_job_id, slurm.array_task_id, slurm.job_id) {
            (Some(array), Some(task), _) => Some(JobRef::Task {
                array: JobId::new(array),
                task: task as u32,
            }),
            (_, _, Some(job)) => Some(JobRef::Job(JobId::new(job))),
            _ => None,
        };
        let allocation_end = match (job, args.walltime) {
            (None, _) => None,
            (Some(_), Some(limit)) => Some(end_from_limit(limit.as_duration())),
            (Some(job), None) => allocation_end(job).await,
        };
        let drain_at_ms = allocation_end.and_then(|end| {
            let job = slurm.array_task_id.or(slurm.job_id).unwrap_or(0);
            drain_at_ms(
                end,
                args.walltime_margin.duration(),
                args.walltime_stagger.duration(),
                job,
            )
        });
        let offer = super::offer::detect(args)?;
        let job_index = env_u64(JOB_INDEX_BASE)
            .map(|base| base.saturating_add(slurm.array_task_id.unwrap_or(0)));
        Ok(Identity {
            job_index,
            process: (0, 1),
            dask_name: None,
            drain_at_ms,
            name,
            slurm,
            hostname,
            address,
            interface: args.interface.clone(),
            cores,
            memory,
            allocation_end,
            offer,
        })
    }

    /// The identity of process `index` of `count` in this job: its share of
    /// cores and memory, and a name that tells the processes apart.
    pub fn share(&self, index: u32, count: u32) -> Identity {
        if count <= 1 {
            return self.clone();
        }
        Identity {
            name: format!("{}-{index}", self.name),
            cores: (self.cores / count).max(1),
            memory: self.memory.split_ceil(count),
            offer: super::offer::share(&self.offer, index, count),
            process: (index, count),
            ..self.clone()
        }
    }

    /// This identity as the agent of Dask worker `name_template`: the Dask
    /// worker is named as dask-jobqueue names it, `TEMPLATE-INDEX` (and
    /// `-P` for process P of several), or `slurm-NAME` without a template.
    pub fn with_dask_name(mut self, template: Option<&str>) -> Identity {
        let name = match (template, self.job_index) {
            (Some(t), index) => {
                let index = index.map_or_else(|| self.slurm.to_string(), |i| i.to_string());
                // Each group numbers its own jobs: its name keeps them apart.
                let t = match &self.offer.group {
                    Some(g) => format!("{t}-{g}"),
                    None => t.to_string(),
                };
                match self.process {
                    (p, n) if n > 1 => format!("{t}-{index}-{p}"),
                    _ => format!("{t}-{index}"),
                }
            }
            (None, _) => crate::dask::dask_name(&self.name),
        };
        self.dask_name = Some(name);
        self
    }

    /// The registration message for this identity.
    pub fn register_request(&self, kind: crate::config::WorkerKind) -> RegisterRequest {
        RegisterRequest {
            name: self.name.clone(),
            slurm: self.slurm.clone(),
            hostname: self.hostname.clone(),
            address: self.address.to_string(),
            cores: self.cores,
            memory_bytes: self.memory.bytes(),
            allocation_end: self.allocation_end,
            drain_at_ms: self.drain_at_ms,
            pid: std::process::id(),
            kind,
            dask_name: self.dask_name.clone(),
            offer: self.offer.clone(),
        }
    }

    /// One line for the job's log: who and where this worker is.
    pub fn describe(&self) -> String {
        let iface = match &self.interface {
            Some(i) => format!("{i} {}", self.address),
            None => self.address.to_string(),
        };
        let ends = match self.allocation_end {
            Some(end) => {
                let left = end.saturating_sub(crate::protocol::unix_ms() / 1000);
                let leave = match self.drain_at_ms {
                    Some(at) => format!(
                        ", leaves {} s before",
                        (end * 1000).saturating_sub(at) / 1000
                    ),
                    None => String::new(),
                };
                format!(", allocation ends in {left} s{leave}")
            }
            None => String::new(),
        };
        let mut offer = String::new();
        if !self.offer.gpus.is_empty() {
            offer.push_str(&format!(", GPUs {}", self.offer.gpus.join(",")));
        }
        for (name, amount) in &self.offer.resources {
            offer.push_str(&format!(", {name}={amount}"));
        }
        if let Some(g) = &self.offer.group {
            offer.push_str(&format!(", group {g}"));
        }
        format!(
            "worker {} (Slurm job {}) on {} ({iface}), {} cores, {} memory{offer}{ends}",
            self.name,
            self.slurm,
            self.hostname,
            self.cores,
            self.memory.human()
        )
    }
}

/// When the allocation of `job` ends, from Slurm's time left.
/// When an allocation with this time limit ends (unix seconds): counted
/// from the start of the job script that started this agent (its parent
/// process, to the second, rounded down), or from now without one. Slurm
/// starts the clock when it allocates, a moment before the script runs;
/// the walltime margin (60 s by default) covers the difference.
fn end_from_limit(limit: Duration) -> u64 {
    let now = crate::protocol::unix_ms() / 1000;
    let started = parent_start().filter(|s| *s <= now).unwrap_or(now);
    started.saturating_add(limit.as_secs())
}

/// When this process's parent started (unix seconds).
fn parent_start() -> Option<u64> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let me = Pid::from_u32(std::process::id());
    let mut sys = System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[me]),
        false,
        ProcessRefreshKind::nothing(),
    );
    let parent = sys.process(me)?.parent()?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[parent]),
        false,
        ProcessRefreshKind::nothing(),
    );
    Some(sys.process(parent)?.start_time()).filter(|t| *t > 0)
}

/// When the allocation ends, as Slurm says (`squeue -o %L`).
async fn allocation_end(job: JobRef) -> Option<u64> {
    match SlurmCli::new().time_left(job).await {
        Ok(Some(left)) => Some(crate::protocol::unix_ms() / 1000 + left.as_secs()),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot learn when the allocation ends");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_counts_from_the_job_scripts_start() {
        // The test runner's parent started before now, and not long ago.
        let now = crate::protocol::unix_ms() / 1000;
        let start = parent_start().expect("a parent with a start time");
        assert!(
            start <= now && start + 86_400 * 365 > now,
            "{start} vs {now}"
        );
        let end = end_from_limit(Duration::from_secs(600));
        assert_eq!(end, start + 600);
    }

    #[test]
    fn drain_time_is_margin_plus_a_share_of_the_stagger() {
        let (m, st) = (Duration::from_secs(30), Duration::from_secs(12));
        let end = 1_000_000;
        let times: Vec<u64> = (100..108)
            .map(|j| drain_at_ms(end, m, st, j).unwrap())
            .collect();
        for t in &times {
            assert!(*t <= end * 1000 - 30_000 && *t > end * 1000 - 42_000, "{t}");
        }
        // Consecutive jobs spread out rather than leaving together.
        let spread = times.iter().max().unwrap() - times.iter().min().unwrap();
        assert!(
            spread > 6_000,
            "8 consecutive jobs spread over only {spread} ms"
        );
        assert_eq!(drain_at_ms(end, Duration::ZERO, st, 1), None);
        assert_eq!(
            drain_at_ms(end, m, Duration::ZERO, 7),
            Some(end * 1000 - 30_000)
        );
    }
}
