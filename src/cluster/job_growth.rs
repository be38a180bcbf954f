//! A pool's jobs grow after one of them ended OUT_OF_MEMORY: the next ones
//! ask for `job-memory-growth` times the memory (2 by default), as far as
//! the partition takes.
//!
//! Slurm says a job ended OUT_OF_MEMORY (in its listing, or in accounting
//! once it left it: `fates.rs`) when the kernel killed one of its
//! processes for memory. The same job again would meet the same end, so
//! the pool renders its script again with the larger memory (the `--mem`
//! directive, the agent's `--memory`, Dask's `--memory-limit` all follow)
//! and tells the scheduler its workers are larger now. It grows once per
//! size: jobs submitted before the last growth ended at the old size and
//! say nothing of the new one. The bound is the partition's: its
//! `MaxMemPerNode` (or `MaxMemPerCPU` times the job's CPUs), and Slurm's
//! own word (`sbatch --test-only`) that a job of that size could run
//! there at all, so growth never makes a job Slurm refuses. A backend
//! that cannot ask without submitting (slurmrestd) grows only under a
//! partition limit it knows. Jobs already submitted keep their size. The
//! present size is kept in `sizing.rs`.

use tokio::time::Instant;

use super::pool::Pool;
use crate::config::{JobSpec, Memory};
use crate::slurm::PartitionInfo;

/// What Slurm says of a grown job.
enum Verdict {
    Takes,
    /// In Slurm's words (or why drover cannot ask).
    Refuses(String),
    /// Slurm did not answer: ask again next round.
    Unsure,
}

/// The memory after `current` grows by `percent` (200 is twice), in whole
/// MiB as Slurm counts it, at most `limit`; `None` when that is no more.
pub(crate) fn grown_memory(current: Memory, percent: u32, limit: Option<Memory>) -> Option<Memory> {
    let want = u128::from(current.bytes()) * u128::from(percent) / 100;
    let want = u64::try_from(want)
        .unwrap_or(u64::MAX)
        .min(crate::config::MAX_MEMORY);
    let mut next = Memory::from_mib(Memory::from_bytes(want).mib_ceil());
    if let Some(limit) = limit {
        next = next.min(limit);
    }
    (next > current).then_some(next)
}

/// The most memory one job may ask for in the partition it goes to (the
/// named one, its first when several are named, else the default).
pub(crate) fn partition_limit(
    partitions: &[PartitionInfo],
    queue: Option<&str>,
    job_cpu: u32,
) -> Option<Memory> {
    let first = queue.and_then(|q| q.split(',').next()).map(str::trim);
    let p = match first {
        Some(name) => partitions.iter().find(|p| p.name == name),
        None => partitions.iter().find(|p| p.default),
    }?;
    let per_cpu = p
        .max_mem_per_cpu_mib
        .map(|m| m.saturating_mul(u64::from(job_cpu.max(1))));
    p.max_mem_per_node_mib.or(per_cpu).map(Memory::from_mib)
}

/// `spec` asking for `job_mem`: its worker processes' memory grows in
/// the same proportion.
pub(crate) fn grown_spec(spec: &JobSpec, job_mem: Memory) -> JobSpec {
    let mut grown = spec.clone();
    let scaled = u128::from(spec.memory.bytes()) * u128::from(job_mem.bytes())
        / u128::from(spec.job_mem.bytes().max(1));
    grown.memory = Memory::from_bytes(u64::try_from(scaled).unwrap_or(u64::MAX).max(1));
    grown.job_mem = job_mem;
    grown
}

impl Pool {
    /// After a round: when a job submitted at the present size ended
    /// OUT_OF_MEMORY, the pool's next jobs ask for more.
    pub(crate) async fn grow_after_out_of_memory(&self) {
        let Some(percent) = self.options.job_memory_growth.percent() else {
            return;
        };
        let (since, current) = {
            let s = self.sizing.lock();
            if s.stopped.is_some() {
                return;
            }
            (s.since, s.job_mem)
        };
        let Some(job) = self.books().out_of_memory_since(since) else {
            return;
        };
        let limit = match self.slurm.partitions().await {
            Ok(p) => partition_limit(&p, self.spec.queue.as_deref(), self.spec.job_cpu),
            Err(_) => None,
        };
        let Some(next) = grown_memory(current, percent, limit) else {
            return self.stop_growing(format!(
                "job {job} ended OUT_OF_MEMORY, but its jobs ask for the partition's most ({})",
                current.to_slurm()
            ));
        };
        let spec = grown_spec(&self.spec, next);
        let script = match crate::script::render(&spec) {
            Ok(s) => s,
            Err(e) => return self.stop_growing(format!("its script did not render: {e}")),
        };
        match self.verdict_on(&script, limit.is_some()).await {
            Verdict::Takes => {}
            // Asked again next round.
            Verdict::Unsure => return,
            Verdict::Refuses(why) => {
                return self.stop_growing(format!(
                    "job {job} ended OUT_OF_MEMORY; a job asking {} would not run here: {why}",
                    next.to_slurm()
                ))
            }
        }
        let shape = super::shape::worker_shape(&spec, self.group.as_deref());
        tracing::warn!(
            group = self.group.as_deref().unwrap_or_default(),
            %job,
            from = %current.to_slurm(),
            to = %next.to_slurm(),
            "a job ended OUT_OF_MEMORY: the pool's next jobs ask for more memory"
        );
        self.scheduler.grow_worker_shape(shape.clone());
        let mut s = self.sizing.lock();
        s.script = script;
        s.shape = shape;
        s.job_mem = next;
        s.since = Instant::now();
        s.times = s.times.saturating_add(1);
    }

    /// Whether Slurm would take a job with `script`: asked without
    /// submitting where the backend can; otherwise only a known partition
    /// limit bounds it.
    async fn verdict_on(&self, script: &str, bounded: bool) -> Verdict {
        if !self.slurm.tests_without_submitting() {
            return match bounded {
                true => Verdict::Takes,
                false => Verdict::Refuses(
                    "no partition limit bounds it and this backend cannot ask Slurm without submitting"
                        .into(),
                ),
            };
        }
        match self.slurm.test_submit(script).await {
            Ok(v) if v.accepted => Verdict::Takes,
            Ok(v) => Verdict::Refuses(v.message),
            Err(e) if e.is_transient() => Verdict::Unsure,
            Err(e) => Verdict::Refuses(e.to_string()),
        }
    }

    fn stop_growing(&self, why: String) {
        tracing::warn!(
            group = self.group.as_deref().unwrap_or_default(),
            "{why}: its jobs keep their memory"
        );
        self.sizing.lock().stopped = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(n: u64) -> Memory {
        Memory::from_mib(n)
    }

    #[test]
    fn memory_grows_by_the_factor_in_whole_mib_up_to_the_limit() {
        assert_eq!(grown_memory(mib(512), 200, None), Some(mib(1024)));
        assert_eq!(grown_memory(mib(1000), 150, None), Some(mib(1500)));
        assert_eq!(
            grown_memory(Memory::from_bytes(1000), 110, None),
            Some(mib(1))
        );
        assert_eq!(grown_memory(mib(512), 200, Some(mib(700))), Some(mib(700)));
        assert_eq!(grown_memory(mib(700), 200, Some(mib(700))), None);
        assert_eq!(grown_memory(mib(800), 200, Some(mib(700))), None);
        let huge = Memory::from_bytes(crate::config::MAX_MEMORY);
        assert_eq!(grown_memory(huge, 1600, None), None);
    }

    fn partition(name: &str, default: bool) -> PartitionInfo {
        PartitionInfo {
            name: name.into(),
            default,
            state: "UP".into(),
            max_time: None,
            max_nodes: None,
            max_cpus_per_node: None,
            max_mem_per_node_mib: None,
            max_mem_per_cpu_mib: None,
            total_nodes: 2,
            total_cpus: 8,
            allowed_accounts: Vec::new(),
            allowed_qos: Vec::new(),
        }
    }

    #[test]
    fn the_limit_is_the_partition_s_per_node_or_per_cpu_times_the_cpus() {
        let mut batch = partition("batch", true);
        batch.max_mem_per_node_mib = Some(4096);
        let mut big = partition("big", false);
        big.max_mem_per_cpu_mib = Some(1000);
        let open = partition("open", false);
        let parts = [batch, big, open];
        assert_eq!(partition_limit(&parts, None, 4), Some(mib(4096)));
        assert_eq!(
            partition_limit(&parts, Some("big,batch"), 4),
            Some(mib(4000))
        );
        assert_eq!(partition_limit(&parts, Some("open"), 4), None);
        assert_eq!(partition_limit(&parts, Some("gone"), 4), None);
    }

    #[test]
    fn a_grown_spec_scales_the_workers_memory_with_the_job_s() {
        let spec = JobSpec::builder()
            .memory("1GiB".parse::<Memory>().unwrap())
            .build()
            .unwrap();
        let grown = grown_spec(&spec, mib(2048));
        assert_eq!(grown.job_mem, mib(2048));
        assert_eq!(grown.memory, mib(2048));
        let script = crate::script::render(&grown).unwrap();
        assert!(script.contains("#SBATCH --mem=2G"), "{script}");
        assert!(script.contains("--memory 2GiB"), "{script}");
    }
}
