//! Who is still alive: a worker silent past the bound is declared lost
//! (its runs requeued), and workers that arrive together, at a pool's
//! start or all coming back to a scheduler restarted from its journal, are
//! given time for the whole arrival before any of them is.

use std::time::Duration;

use tokio::time::Instant;

use super::config::RETURN_GRACE_PER_WORKER;
use super::registry::Registry;
use crate::journal::Op;
use crate::protocol::{unix_ms, WorkerState};

impl Registry {
    /// Declares lost every live worker silent for longer than `bound`;
    /// returns how many.
    pub(crate) fn mark_lost(&mut self, bound: Duration) -> usize {
        let now = Instant::now();
        let mut lost = 0;
        let mut gone = Vec::new();
        // Whether anyone of the arrival is still on its way.
        let mut awaited_left = false;
        // Workers not yet heard from arrive all at once (a pool's start, a
        // restart from the journal), and the machine admits their
        // connections at its own pace: each is given time for all of them,
        // until every one has come (or been declared lost).
        let awaited_bound =
            bound.saturating_add(RETURN_GRACE_PER_WORKER.saturating_mul(self.arriving));
        for entry in self.workers.values_mut() {
            let live = entry.info.state.is_live();
            let silent = now.duration_since(entry.last_seen);
            let bound = match entry.awaited {
                true => awaited_bound,
                false => bound,
            };
            let lost_now = live && silent > bound;
            awaited_left |= entry.awaited && live && !lost_now;
            if lost_now {
                entry.info.state = WorkerState::Lost;
                entry.info.exited_at_ms = Some(unix_ms());
                entry.info.exit_reason = Some(format!(
                    "no heartbeat for {:.1} s (bound {:.1} s)",
                    silent.as_secs_f64(),
                    bound.as_secs_f64()
                ));
                tracing::warn!(
                    worker = %entry.info.id,
                    name = %entry.info.name,
                    job = %entry.info.slurm,
                    silent_s = silent.as_secs_f64(),
                    "worker lost: no heartbeat"
                );
                lost += 1;
                gone.push(entry.info.id);
            }
        }
        // The arrival is over once every worker in it came or was lost.
        if !awaited_left {
            self.arriving = 0;
        }
        if let Some(j) = &mut self.journal {
            for id in &gone {
                let e = &self.workers[id].info;
                j.append(&Op::Lost {
                    worker: *id,
                    reason: e.exit_reason.clone().unwrap_or_default(),
                    at_ms: e.exited_at_ms.unwrap_or_default(),
                });
            }
        }
        let requeued: usize = gone
            .iter()
            .map(|id| {
                let at_ms = self.workers[id].info.exited_at_ms.unwrap_or_else(unix_ms);
                self.tasks.worker_gone(*id, "lost", at_ms)
            })
            .sum();
        if requeued > 0 {
            self.wake_idle();
        }
        lost
    }

    /// After a replay: every live worker is awaited (it comes back with all
    /// the others), and one with runs handed out must say, at its first
    /// poll, which it holds.
    pub(crate) fn expect_returns(&mut self) {
        self.arriving = 0;
        for (id, e) in &mut self.workers {
            e.awaited = e.info.state.is_live();
            e.unconfirmed = e.awaited && self.tasks.running_on(*id) > 0;
            self.arriving = self.arriving.saturating_add(e.awaited as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use crate::protocol::WorkerId;
    use crate::scheduler::registry::tests::{request, restarted};

    #[tokio::test(start_paused = true)]
    async fn workers_arriving_together_have_a_grace_scaled_to_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut r = Registry::default();
        r.keep_journal(Journal::open(&path).unwrap().0);
        let ids: Vec<WorkerId> = (1..=3).map(|i| r.register(request(i))).collect();
        let mut back = restarted(&r, &path).await;
        // Three restored workers, each given time for all three beyond
        // the usual bound.
        let bound = Duration::from_secs(2);
        let grace = RETURN_GRACE_PER_WORKER * 3;
        tokio::time::advance(bound + grace / 2).await;
        back.poll(ids[0], false, Some(Vec::new())).unwrap();
        assert_eq!(back.mark_lost(bound), 0, "past the bound, within the grace");
        // One has come back: the others keep the whole grace.
        tokio::time::advance(grace / 4).await;
        assert_eq!(back.mark_lost(bound), 0);
        tokio::time::advance(grace / 2).await;
        assert_eq!(back.mark_lost(bound), 2, "the two that never came back");
        let states: Vec<WorkerState> = back.list().iter().map(|w| w.state).collect();
        assert_eq!(
            states,
            [WorkerState::Running, WorkerState::Lost, WorkerState::Lost]
        );
        // The one that came back is held to the usual bound; so is a new
        // worker that comes alone once the arrival is over.
        let alone = back.register(request(9));
        back.poll(ids[0], false, None).unwrap();
        tokio::time::advance(bound).await;
        assert_eq!(back.mark_lost(bound), 0);
        tokio::time::advance(RETURN_GRACE_PER_WORKER * 2).await;
        assert_eq!(back.mark_lost(bound), 2);
        assert_eq!(back.list().last().unwrap().id, alone);
        assert_eq!(back.list().last().unwrap().state, WorkerState::Lost);
    }
}
