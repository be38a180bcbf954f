//! The worker listing of the status API: pages of workers in id order,
//! with counts by state that need no listing at all.
//!
//! A pool of 100,000 workers lists as tens of megabytes of JSON; built
//! under the registry's lock, that held up every heartbeat behind it.
//! A page is at most `WORKER_PAGE` workers, and `summary=true` gives the
//! counts alone.

use serde::{Deserialize, Serialize};

use super::{WorkerId, WorkerInfo, WorkerState};

/// The most workers one page of the listing holds.
pub const WORKER_PAGE: usize = 1000;

/// How many workers are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounts {
    /// Registered and heartbeating.
    pub running: u64,
    /// Asked to retire, not yet gone.
    pub retiring: u64,
    /// Draining before their allocations end.
    pub draining: u64,
    /// Left by themselves.
    pub exited: u64,
    /// Silent for longer than the configured bound.
    pub lost: u64,
}

impl WorkerCounts {
    /// Counts one more worker in `state`.
    pub fn add(&mut self, state: WorkerState) {
        let slot = match state {
            WorkerState::Running => &mut self.running,
            WorkerState::Retiring => &mut self.retiring,
            WorkerState::Draining => &mut self.draining,
            WorkerState::Exited => &mut self.exited,
            WorkerState::Lost => &mut self.lost,
        };
        *slot = slot.saturating_add(1);
    }

    /// Workers still there (running, retiring or draining).
    pub fn live(&self) -> u64 {
        self.running
            .saturating_add(self.retiring)
            .saturating_add(self.draining)
    }

    /// Every worker counted.
    pub fn total(&self) -> u64 {
        self.live()
            .saturating_add(self.exited)
            .saturating_add(self.lost)
    }
}

impl FromIterator<WorkerState> for WorkerCounts {
    fn from_iter<I: IntoIterator<Item = WorkerState>>(states: I) -> Self {
        let mut counts = WorkerCounts::default();
        states.into_iter().for_each(|s| counts.add(s));
        counts
    }
}

/// Which workers `GET /v1/workers` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerListQuery {
    /// Only the counts.
    #[serde(default)]
    pub summary: bool,
    /// Only workers after this one (the last of the page before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<WorkerId>,
    /// At most this many workers (1 to `WORKER_PAGE`; that when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl WorkerListQuery {
    /// The page size asked for, or why it cannot be served.
    pub fn page_size(&self) -> Result<usize, String> {
        match self.limit {
            None => Ok(WORKER_PAGE),
            Some(n) if (1..=WORKER_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(format!(
                "limit: {n} is not a page size; give 1 to {WORKER_PAGE}"
            )),
        }
    }
}

/// One page of workers and the counts of all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerList {
    /// How many workers are in each state (all of them, not the page's).
    pub counts: WorkerCounts,
    /// The page, in id order; empty for a summary.
    pub workers: Vec<WorkerInfo>,
    /// Whether workers were left for a next page: ask again after the
    /// last one given.
    #[serde(default)]
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_state() {
        let counts: WorkerCounts = [
            WorkerState::Running,
            WorkerState::Running,
            WorkerState::Draining,
            WorkerState::Lost,
            WorkerState::Exited,
            WorkerState::Retiring,
        ]
        .into_iter()
        .collect();
        assert_eq!(counts.running, 2);
        assert_eq!(counts.live(), 4);
        assert_eq!(counts.total(), 6);
    }

    #[test]
    fn a_page_size_is_bounded_and_named_when_refused() {
        let q = |limit| WorkerListQuery {
            limit,
            ..Default::default()
        };
        assert_eq!(q(None).page_size(), Ok(WORKER_PAGE));
        assert_eq!(q(Some(10)).page_size(), Ok(10));
        let e = q(Some(0)).page_size().unwrap_err();
        assert!(e.starts_with("limit: 0") && e.contains("1 to 1000"), "{e}");
        assert!(q(Some(WORKER_PAGE + 1)).page_size().is_err());
    }

    #[test]
    fn a_query_round_trips_through_a_query_string() {
        let q = WorkerListQuery {
            summary: false,
            after: Some(WorkerId(41)),
            limit: Some(5),
        };
        let text = serde_urlencoded::to_string(&q).unwrap();
        assert_eq!(text, "summary=false&after=41&limit=5");
        assert_eq!(
            serde_urlencoded::from_str::<WorkerListQuery>(&text).unwrap(),
            q
        );
        let empty = serde_urlencoded::from_str::<WorkerListQuery>("").unwrap();
        assert_eq!(empty, WorkerListQuery::default());
    }
}
