//! Log lines that a flood cannot multiply: at most a few per window for
//! each kind of event, the rest counted and reported with the next line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lines let through per window.
const BURST: u64 = 5;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);

/// A rate limit on one kind of log line.
pub(crate) struct Throttle {
    window: Mutex<(Instant, u64)>,
    suppressed: AtomicU64,
}

impl Throttle {
    /// A throttle with an empty window.
    pub(crate) fn new() -> Throttle {
        Throttle {
            window: Mutex::new((Instant::now(), 0)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Records one event: runs `log` (given how many lines were held back
    /// since the last one) if the window has room, else counts it.
    pub(crate) fn note(&self, log: impl FnOnce(u64)) {
        if self.allow(Instant::now()) {
            log(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn allow(&self, now: Instant) -> bool {
        let mut w = self.window.lock();
        if now.duration_since(w.0) >= WINDOW {
            *w = (now, 0);
        }
        w.1 += 1;
        w.1 <= BURST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_until_the_window_turns() {
        let t = Throttle::new();
        let mut logged = Vec::new();
        for _ in 0..1000 {
            t.note(|n| logged.push(n));
        }
        assert_eq!(logged, vec![0; BURST as usize]);
        assert_eq!(t.suppressed.load(Ordering::Relaxed), 1000 - BURST);
        // A later window lets lines through again, with the count held back.
        t.window.lock().0 -= WINDOW;
        t.note(|n| logged.push(n));
        assert_eq!(logged.last(), Some(&(1000 - BURST)));
    }
}
