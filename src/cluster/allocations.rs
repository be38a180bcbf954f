//! What a pool's jobs were allocated, read from Slurm's accounting for
//! what the pool cost: one `sacct` for every group's jobs
//! (`Slurm::allocations`), beside the reconcile loop every
//! `accounting-interval` (sooner once jobs start or end), and at close.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::pool::Pool;
use crate::accounting::Allocation;
use crate::protocol::unix_ms;
use crate::slurm::JobRef;

/// Read further back than the pool began, for clocks apart.
const ACCOUNTING_MARGIN_S: u64 = 300;

/// Reads what every group's jobs were allocated since the pool began, with
/// one accounting call for all (by their names, which carry the cluster
/// id and group), and hands it to the scheduler. Without accounting (or
/// over slurmrestd) nothing is handed over, and the report counts the
/// workers' lifetimes instead. Returns whether the answer is whole: every
/// job read has ended and every job a worker registered from is in it
/// (accounting's selection by name and time trails its records by a few
/// seconds, seen on 22.05); `None` when nothing was read.
pub(crate) async fn read_allocations(pools: &[Arc<Pool>]) -> Option<bool> {
    let first = &pools[0];
    if !first.options.scheduler.accounting {
        return None;
    }
    let names: Vec<String> = pools.iter().map(|p| p.spec.job_name.clone()).collect();
    let since_s = unix_ms().saturating_sub(first.scheduler.began_ms()) / 1000;
    let window = since_s.saturating_add(ACCOUNTING_MARGIN_S);
    use std::sync::atomic::Ordering::Relaxed;
    let found = match first.slurm.allocations(&names, window).await {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        // Said once: a node that cannot reach slurmdbd cannot at every read.
        Err(e) => {
            match first.accounting_failing.swap(true, Relaxed) {
                false => {
                    tracing::warn!(error = %e, "cannot read the pool's allocations from accounting (said once until it can): its report keeps what it read last, or counts the workers' lifetimes")
                }
                true => {
                    tracing::debug!(error = %e, "cannot read the pool's allocations from accounting")
                }
            }
            return None;
        }
    };
    if first.accounting_failing.swap(false, Relaxed) {
        tracing::info!("reading the pool's allocations from accounting again");
    }
    let read: HashSet<JobRef> = found.iter().map(|a| a.job).collect();
    let allocations: Vec<Allocation> = found
        .into_iter()
        .filter_map(|a| {
            let pool = pools.iter().find(|p| p.spec.job_name == a.name)?;
            Some(Allocation {
                group: pool.group.clone(),
                // A job that has not started was allocated nothing yet.
                start_s: a.start_s?,
                end_s: a.end_s,
                tres: a.tres,
                energy_joules: a.energy_joules,
            })
        })
        .collect();
    let ended = allocations.iter().all(|a| a.end_s.is_some());
    let whole = (first.scheduler.workers().iter())
        .filter_map(super::job_record::job_of)
        .all(|job| read.contains(&job));
    first.scheduler.set_allocations(allocations);
    Some(ended && whole)
}

/// When the pool reads its allocations: every `accounting-interval`, and
/// sooner (at most every tenth of it) once jobs started or ended since the
/// last read, so that a young pool's report has its jobs; never while a
/// read is under way. Reads run beside the loop.
pub(super) struct AccountingPace {
    every: Duration,
    /// The last read: when, the read, and how many jobs ran then.
    last: Option<(Instant, JoinHandle<()>, usize)>,
}

impl AccountingPace {
    pub(super) fn new(every: Duration) -> Self {
        AccountingPace { every, last: None }
    }

    pub(super) fn after_round(&mut self, pools: &[Arc<Pool>]) {
        // Accounting off: there is nothing to read (not even a task that
        // finds so every interval).
        if !pools[0].options.scheduler.accounting {
            return;
        }
        let running: usize = pools.iter().map(|p| p.books().running_jobs()).sum();
        let due = match &self.last {
            None => true,
            Some((at, reading, ran)) => {
                reading.is_finished() && due(at.elapsed(), self.every, *ran != running)
            }
        };
        if due {
            let pools = pools.to_vec();
            let reading = tokio::spawn(async move {
                read_allocations(&pools).await;
            });
            self.last = Some((Instant::now(), reading, running));
        }
    }
}

/// Whether a read is due `since` the last one, every `every`, or sooner
/// when the jobs that run `changed`.
fn due(since: Duration, every: Duration, changed: bool) -> bool {
    since >= every || (changed && since >= every / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_read_every_interval_and_sooner_when_jobs_start_or_end() {
        let every = Duration::from_secs(60);
        assert!(
            !due(Duration::from_secs(5), every, true),
            "not within a tenth"
        );
        assert!(due(Duration::from_secs(6), every, true));
        assert!(!due(Duration::from_secs(59), every, false));
        assert!(due(Duration::from_secs(60), every, false));
    }
}
