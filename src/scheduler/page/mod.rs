//! The status page the scheduler serves (`/ui`): the pool live, its jobs
//! with their pending reasons, its tasks, recent errors, its cost, a
//! timeline chart with utilisation, and a page per worker following its
//! log. A browser gets in with a one-time code (`drover dashboard`); it
//! acts (scale, cancel a job or a task) only with its session's action
//! token (`actions.rs`).

mod actions;
mod cost;
mod login;
mod render;
mod routes;
mod timeline;
mod versions;
mod view;

pub(crate) use routes::{dashboard_code, has_session, router};

use parking_lot::Mutex;

use super::Shared;

/// What the page keeps between requests.
pub(crate) struct Page {
    logins: Mutex<login::Logins>,
    timeline: Mutex<timeline::Timeline>,
    /// The live part's versions, rendered once a refresh however many
    /// pages are open.
    live: Mutex<versions::LivePart>,
    /// Whether the scheduler serves TLS (the cookie is then `Secure`).
    tls: bool,
}

impl Page {
    pub(crate) fn new(samples: usize, tls: bool) -> Self {
        Page {
            logins: Mutex::new(login::Logins::default()),
            timeline: Mutex::new(timeline::Timeline::new(samples)),
            live: Mutex::new(versions::LivePart::default()),
            tls,
        }
    }
}

/// The pool as it is this instant, as the page and its timeline see it.
struct Now {
    at_ms: u64,
    cluster: Option<crate::protocol::ClusterStatus>,
    tasks: crate::protocol::TaskCounts,
    live: usize,
    /// Cores the live workers have, and those running tasks hold.
    cores: (u64, u64),
}

impl Now {
    fn of(shared: &Shared) -> Now {
        let cluster = shared.cluster_status.lock().clone().and_then(|f| f());
        let registry = shared.registry();
        Now {
            at_ms: crate::protocol::unix_ms(),
            cluster,
            tasks: registry.tasks.counts(),
            live: registry.live(),
            cores: registry.cores_in_use(),
        }
    }

    fn sample(&self) -> crate::protocol::Sample {
        let (cluster, tasks) = (self.cluster.as_ref(), &self.tasks);
        timeline::sample(self.at_ms, cluster, self.live, tasks, self.cores)
    }
}

/// Adds a sample of the pool as it is now to the timeline.
pub(crate) fn sample(shared: &Shared) {
    let s = Now::of(shared).sample();
    shared.page.timeline.lock().push(s);
}

/// A fresh one-time login code.
pub(crate) fn new_code(shared: &Shared) -> crate::protocol::Token {
    shared
        .page
        .logins
        .lock()
        .new_code(std::time::Instant::now())
}
