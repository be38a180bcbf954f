//! A cluster's reconcile loop: one round for all of its groups, then wait
//! for the next reason to look. A round lists the jobs of every group that
//! looks with one `squeue` (`Slurm::jobs_named`), then lets each group's
//! books decide on its share of the listing; then one `sacct`
//! (`Slurm::fates`) for the jobs of all groups that left the listing.
//! `select!` only yields events; the groups decide. At a slower pace
//! (`accounting-interval`) and once at close, one `sacct` reads what every
//! group's jobs were allocated (`Slurm::allocations`), off the loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::fates::Answer;
use super::pool::Pool;
use crate::accounting::Allocation;
use crate::protocol::unix_ms;
use crate::scheduler::ControlRequest;

/// Read further back than the pool began, for clocks apart.
const ACCOUNTING_MARGIN_S: u64 = 300;

/// What wakes the loop.
enum Event {
    /// The soonest group's interval passed.
    Tick,
    /// `scale` or `adapt` changed a target.
    Woken,
    /// A client asked group `.0` through the scheduler's API.
    Control(usize, ControlRequest),
}

/// One round of every group: one listing for all that look.
pub(crate) async fn round(pools: &[Arc<Pool>]) {
    let looking: Vec<bool> = pools.iter().map(|p| p.needs_look()).collect();
    let names: Vec<String> = pools
        .iter()
        .zip(&looking)
        .filter(|(_, looks)| **looks)
        .map(|(p, _)| p.spec.job_name.clone())
        .collect();
    let listed = match names.is_empty() {
        true => None,
        false => Some(pools[0].slurm.jobs_named(&names).await),
    };
    for (pool, looks) in pools.iter().zip(looking) {
        let listing = match (&listed, looks) {
            (Some(Ok(all)), true) => {
                let name = &pool.spec.job_name;
                let ours = all.iter().filter(|j| &j.name == name).cloned().collect();
                pool.take_listing(Ok(ours))
            }
            (Some(Err(e)), true) => pool.take_listing(Err(e)),
            _ => None,
        };
        pool.round_after(listing).await;
    }
    ask_fates(pools).await;
}

/// How the jobs that left the listing ended: one accounting call for every
/// group's (none when no job waits), each group taking its own.
async fn ask_fates(pools: &[Arc<Pool>]) {
    let wanted: Vec<_> = pools.iter().flat_map(|p| p.books().ends_wanted()).collect();
    if wanted.is_empty() {
        return;
    }
    let answer = pools[0].slurm.fates(&wanted).await;
    let answer = match &answer {
        Ok(Some(fates)) => Answer::Fates(fates),
        Ok(None) => Answer::NoAccounting,
        // Without Slurm nothing is concluded (as of the listing).
        Err(e) if e.is_unreachable() => return,
        Err(e) => {
            tracing::warn!(error = %e, jobs = wanted.len(), "cannot read how jobs ended from accounting");
            Answer::Failed
        }
    };
    let now = tokio::time::Instant::now();
    for pool in pools {
        pool.books().take_fates(answer, now);
    }
}

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
    let found_jobs: Vec<_> = found.iter().map(|a| a.job).collect();
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
    let read: std::collections::HashSet<_> = found_jobs.into_iter().collect();
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
struct AccountingPace {
    every: Duration,
    /// The last read: when, the read, and how many jobs ran then.
    last: Option<(Instant, JoinHandle<()>, usize)>,
}

impl AccountingPace {
    fn new(every: Duration) -> Self {
        AccountingPace { every, last: None }
    }

    fn after_round(&mut self, pools: &[Arc<Pool>]) {
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

/// The loop: a round, then the soonest of the groups' intervals, a wake,
/// or a control request, handed to its group. Every
/// `accounting-interval`, the allocations are read beside it.
pub(crate) async fn run(
    pools: Vec<Arc<Pool>>,
    controls: Vec<mpsc::UnboundedReceiver<ControlRequest>>,
) {
    // Each group's control channel, merged into one; the forwarders end
    // with this loop (dropping the set aborts them).
    let (tx, mut requests) = mpsc::unbounded_channel();
    let mut forwarders = JoinSet::new();
    for (i, mut control) in controls.into_iter().enumerate() {
        let tx = tx.clone();
        forwarders.spawn(async move {
            while let Some(r) = control.recv().await {
                if tx.send((i, r)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut open = true;
    let wake = pools[0].wake.clone();
    let mut accounting = AccountingPace::new(pools[0].options.accounting_interval);
    loop {
        round(&pools).await;
        accounting.after_round(&pools);
        let next = pools
            .iter()
            .map(|p| p.next_round_in())
            .min()
            .unwrap_or_default();
        let event = tokio::select! {
            _ = tokio::time::sleep(next) => Event::Tick,
            _ = wake.notified() => Event::Woken,
            request = requests.recv(), if open => match request {
                Some((i, r)) => Event::Control(i, r),
                None => {
                    open = false;
                    Event::Tick
                }
            },
        };
        match event {
            Event::Tick | Event::Woken => {}
            Event::Control(i, request) => {
                if let Some(pool) = pools.get(i) {
                    pool.control(request);
                }
            }
        }
    }
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
