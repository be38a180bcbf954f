//! What the status API sees of the registry: workers in pages, in id
//! order, and their counts by state, each built from the registry alone.

use super::registry::{Entry, Registry};
use crate::config::WorkerKind;
use crate::protocol::{WorkerCounts, WorkerId, WorkerInfo};

impl Registry {
    /// Every worker, ordered by id.
    pub(crate) fn list(&self) -> Vec<WorkerInfo> {
        self.workers.values().map(|e| self.info_of(e)).collect()
    }

    /// At most `limit` workers after `after`, in id order, and whether
    /// more were left.
    pub(crate) fn page(&self, after: Option<WorkerId>, limit: usize) -> (Vec<WorkerInfo>, bool) {
        let from = WorkerId(after.map_or(0, |a| a.0.saturating_add(1)));
        let mut rest = self.workers.range(from..).map(|(_, e)| e);
        let page = rest.by_ref().take(limit).map(|e| self.info_of(e)).collect();
        (page, rest.next().is_some())
    }

    /// How many workers are in each state: a walk over the states, no
    /// listing.
    pub(crate) fn counts(&self) -> WorkerCounts {
        self.workers.values().map(|e| e.info.state).collect()
    }

    /// What the status API shows of one worker.
    fn info_of(&self, e: &Entry) -> WorkerInfo {
        let mut info = e.info.clone();
        // A Dask worker's activity comes from Dask (set_dask_activity).
        if info.kind == WorkerKind::Native {
            info.running_tasks = self.tasks.running_on(info.id) as u32;
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Departure, WorkerState};
    use crate::scheduler::registry::tests::request;

    #[test]
    fn pages_follow_ids_and_counts_need_no_listing() {
        let mut r = Registry::default();
        let ids: Vec<WorkerId> = (1..=25).map(|i| r.register(request(i))).collect();
        r.deregister(ids[3], "done".into(), Departure::Orderly);
        let (first, more) = r.page(None, 10);
        assert_eq!(first.iter().map(|w| w.id).collect::<Vec<_>>(), ids[..10]);
        assert!(more);
        let (last, more) = r.page(Some(ids[19]), 10);
        assert_eq!(last.iter().map(|w| w.id).collect::<Vec<_>>(), ids[20..]);
        assert!(!more, "the last page says no more");
        assert_eq!(r.page(Some(ids[24]), 10), (vec![], false));
        assert_eq!(r.page(Some(WorkerId(u64::MAX)), 10), (vec![], false));
        let counts = r.counts();
        assert_eq!((counts.running, counts.exited, counts.total()), (24, 1, 25));
        assert_eq!(first[3].state, WorkerState::Exited);
        assert_eq!(r.list().len(), 25);
    }
}
