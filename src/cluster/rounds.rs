//! A cluster's reconcile loop: one round for all of its groups, then wait
//! for the next reason to look. A round lists the jobs of every group that
//! looks with one `squeue` (`Slurm::jobs_named`), then lets each group's
//! books decide on its share of the listing; then one `sacct`
//! (`Slurm::fates`) for the jobs of all groups that left the listing.
//! `select!` only yields events; the groups decide. After each round the
//! allocations are read when due (`allocations.rs`), beside the loop.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::allocations::AccountingPace;
use super::fates::Answer;
use super::pool::Pool;
use crate::scheduler::ControlRequest;

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
