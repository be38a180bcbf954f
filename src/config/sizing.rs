//! How many jobs a size asks for (pure). A pool is sized in jobs, while
//! users ask in workers, cores or memory: every conversion into jobs is
//! here, so the CLI, the library, the scheduler's API and Python (through
//! the binding) round the same way.

use super::{JobSpec, Memory};

/// What one job of a pool holds, as sizing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerJob {
    /// Workers: processes on each node, times its nodes.
    pub workers: u32,
    /// Cores over all of its nodes.
    pub cores: u64,
    /// Memory over all of its nodes, in bytes.
    pub memory: u64,
}

/// A size as a user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Workers(u64),
    Jobs(u64),
    Cores(u64),
    Memory(Memory),
}

impl PerJob {
    /// What one job of `spec` holds.
    pub fn of(spec: &JobSpec) -> PerJob {
        let nodes = u64::from(spec.nodes.max(1));
        PerJob {
            workers: spec.workers_per_job(),
            cores: u64::from(spec.cores).saturating_mul(nodes),
            memory: spec.memory.bytes().saturating_mul(nodes),
        }
    }

    /// The jobs `ask` needs: rounded up, so a job is never short.
    pub fn jobs_for(&self, ask: Ask) -> usize {
        let jobs = match ask {
            Ask::Workers(n) => n.div_ceil(u64::from(self.workers.max(1))),
            Ask::Jobs(n) => n,
            Ask::Cores(n) => n.div_ceil(self.cores.max(1)),
            Ask::Memory(m) => m.bytes().div_ceil(self.memory.max(1)),
        };
        usize::try_from(jobs).unwrap_or(usize::MAX)
    }

    /// The jobs for `n` workers.
    pub fn jobs_for_workers(&self, n: usize) -> usize {
        self.jobs_for(Ask::Workers(u64::try_from(n).unwrap_or(u64::MAX)))
    }

    /// The jobs the largest of several asks needs (none: 0).
    pub fn jobs_for_all(&self, asks: &[Ask]) -> usize {
        asks.iter().map(|a| self.jobs_for(*a)).max().unwrap_or(0)
    }

    /// An adaptive range of workers in jobs: `max` is at least `min`.
    pub fn job_range(&self, min: usize, max: usize) -> (usize, usize) {
        (
            self.jobs_for_workers(min),
            self.jobs_for_workers(max.max(min)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER: PerJob = PerJob {
        workers: 4,
        cores: 8,
        memory: 16 << 30,
    };

    #[test]
    fn every_ask_rounds_up_to_whole_jobs() {
        assert_eq!(PER.jobs_for(Ask::Workers(0)), 0);
        assert_eq!(PER.jobs_for(Ask::Workers(1)), 1);
        assert_eq!(PER.jobs_for(Ask::Workers(8)), 2);
        assert_eq!(PER.jobs_for(Ask::Workers(9)), 3);
        assert_eq!(PER.jobs_for(Ask::Jobs(5)), 5);
        assert_eq!(PER.jobs_for(Ask::Cores(17)), 3);
        assert_eq!(PER.jobs_for(Ask::Memory(Memory::from_bytes(33 << 30))), 3);
    }

    #[test]
    fn the_largest_ask_wins_and_ranges_keep_their_order() {
        let asks = [Ask::Workers(4), Ask::Cores(24), Ask::Jobs(2)];
        assert_eq!(PER.jobs_for_all(&asks), 3);
        assert_eq!(PER.jobs_for_all(&[]), 0);
        assert_eq!(PER.job_range(5, 1), (2, 2));
        assert_eq!(PER.job_range(0, 9), (0, 3));
    }

    #[test]
    fn nothing_divides_by_zero_or_overflows() {
        let empty = PerJob {
            workers: 0,
            cores: 0,
            memory: 0,
        };
        assert_eq!(empty.jobs_for(Ask::Workers(3)), 3);
        assert_eq!(empty.jobs_for(Ask::Cores(u64::MAX)), usize::MAX);
    }
}
