//! Load: 10,000 simulated workers (in-process clients speaking the real
//! protocol over loopback, each on its own session) register with a
//! `drover scheduler` process that keeps a journal, heartbeat, and stay
//! through the scheduler's restart from that journal: all 10,000 open
//! their sessions again and none is lost. Bounded in count and in time;
//! it stops by itself.
//!
//! The scheduler runs as its own process because each simulated worker
//! holds a connection, and the scheduler must be killed and restarted.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::simulated::{hold_session, Counts};
use drover::protocol::WorkerState;

const WORKERS: usize = 10_000;
const LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tls_workers_hold_their_sessions_through_a_scheduler_restart() {
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, 1 << 17, 1 << 17);
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    // Every simulated worker connects from 127.0.0.1, where real ones come
    // from their nodes: lift the scheduler's per-address cap (this file's
    // only test, so no other test sees the variable).
    std::env::set_var("DROVER_MAX_CONNECTIONS_PER_PEER", "1000000");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("pool.journal");
    // The default heartbeat and bound (5 s, 3 missed): the restart's
    // storm fits in the grace restored workers get, scaled to the pool.
    let args = ["--journal", journal.to_str().unwrap()];
    let (scheduler, file) = common::process::scheduler_process(dir.path(), &args).await;
    // Registrations share a few pooled connections; each session is a
    // connection of its own.
    let client = common::process::pooled_client(&file, 64);
    let counts = Arc::new(Counts::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = async {
        let mut tasks = tokio::task::JoinSet::new();
        let started = Instant::now();
        for i in 0..WORKERS {
            let (client, counts, stopped) = (client.clone(), counts.clone(), stopped.clone());
            tasks.spawn(hold_session(client, i, counts, stopped));
        }
        until(&counts, |c| c.sessions.load(Relaxed) >= WORKERS).await;
        eprintln!(
            "{WORKERS} workers registered and holding sessions in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let before = listing(&client).await;
        assert_eq!(before.len(), WORKERS);
        assert!(before.iter().all(|w| w.state == WorkerState::Running));

        // The scheduler dies; it comes back from its journal, at the same
        // address, and every worker opens its session again.
        drop(scheduler);
        let restarted = Instant::now();
        let (scheduler, _) = common::process::scheduler_process(dir.path(), &args).await;
        until(&counts, |c| c.sessions.load(Relaxed) >= 2 * WORKERS).await;
        eprintln!(
            "{WORKERS} sessions opened again {:.1} s after the restart",
            restarted.elapsed().as_secs_f64()
        );
        // A heartbeat round on the new sessions, then the list.
        let answered = counts.answers.load(Relaxed);
        until(&counts, |c| c.answers.load(Relaxed) >= answered + WORKERS).await;
        let after = listing(&client).await;
        // Under the same load: the counts alone, and one page of 1,000.
        let asked = Instant::now();
        let counts_now = client.worker_counts().await.expect("the worker counts");
        let summary_ms = asked.elapsed().as_secs_f64() * 1000.0;
        let asked = Instant::now();
        let page = client.worker_page(None, 1000).await.expect("a page");
        let page_ms = asked.elapsed().as_secs_f64() * 1000.0;
        eprintln!("under load: counts in {summary_ms:.1} ms, a page of 1,000 in {page_ms:.1} ms");
        assert_eq!(counts_now.running, WORKERS as u64, "{counts_now:?}");
        assert_eq!((page.workers.len(), page.more), (1000, true));
        let ids = |w: &[drover::protocol::WorkerInfo]| w.iter().map(|w| w.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&page.workers),
            ids(&after[..1000]),
            "the first 1,000 by id"
        );
        stop.send(true).unwrap();
        let mut ids = Vec::new();
        while let Some(done) = tasks.join_next().await {
            ids.push(done.expect("a simulated worker succeeds"));
        }
        (before, after, ids, scheduler)
    };
    let (before, after, ids, _scheduler) = tokio::time::timeout(LIMIT, run)
        .await
        .expect("the load test finishes within its time limit");

    assert_eq!(
        counts.registered.load(Relaxed),
        WORKERS,
        "each registered once"
    );
    assert_eq!(counts.unexpected.load(Relaxed), 0, "only acknowledgements");
    assert_eq!(
        after.len(),
        WORKERS,
        "the restarted scheduler knows them all"
    );
    let lost: Vec<_> = after
        .iter()
        .filter(|w| w.state != WorkerState::Running)
        .take(5)
        .collect();
    assert!(lost.is_empty(), "none lost or gone: {lost:?}");
    let mut known: Vec<u64> = before.iter().map(|w| w.id.0).collect();
    let mut kept: Vec<u64> = ids.iter().map(|id| id.0).collect();
    known.sort();
    kept.sort();
    assert_eq!(known, kept, "every worker kept its id through the restart");
}

/// Every worker the scheduler knows, in pages of 1,000. The listing of
/// 10,000 in one answer (4 MB) while all of them heartbeat took over the
/// client's 10 s once on 2 cores in a debug build (CI): a page that fails
/// so is asked again, a bounded number of times.
async fn listing(client: &drover::client::SchedulerClient) -> Vec<drover::protocol::WorkerInfo> {
    for _ in 0..10 {
        match client.workers().await {
            Ok(w) => return w,
            Err(e) if e.is_transient() => eprintln!("listing the workers: {e}; again"),
            Err(e) => panic!("listing the workers: {e}"),
        }
    }
    panic!("the workers could not be listed");
}

/// Waits until `done` holds for the counts.
async fn until(counts: &Counts, done: impl Fn(&Counts) -> bool) {
    while !done(counts) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
