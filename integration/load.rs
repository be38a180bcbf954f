//! Load: 10,000 simulated workers (in-process clients speaking the real
//! protocol over loopback) register with a `drover scheduler` process and
//! heartbeat. Bounded in count and in time; it stops by itself.
//!
//! The scheduler runs as its own process because each simulated worker
//! holds a connection, and one process here may hold only 20,000 files.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drover::protocol::{Departure, DeregisterRequest, Instruction, WorkerState};

const WORKERS: usize = 10_000;
const HEARTBEATS: usize = 3;
const LIMIT: Duration = Duration::from_secs(300);
/// Registrations in flight at once. Real workers start a scheduling pass
/// at a time on their own nodes (about 100 per pass here); 10,000 TLS
/// handshakes begun in the same instant by one two-core process left the
/// first workers' heartbeats queued behind them for over the 60 s a
/// worker may be silent, in this test's client as much as in the server.
const REGISTERING_AT_ONCE: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_simulated_workers_register_and_heartbeat() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    // Every simulated worker connects from 127.0.0.1, where real ones come
    // from their nodes: lift the scheduler's per-address cap (this file's
    // only test, so no other test sees the variable).
    std::env::set_var("DROVER_MAX_CONNECTIONS_PER_PEER", "1000000");
    let dir = tempfile::tempdir().unwrap();
    let (_scheduler, file) = common::process::scheduler_process(
        dir.path(),
        &["--heartbeat-interval", "2s", "--missed-heartbeats", "30"],
    )
    .await;
    let client = common::process::pooled_client(&file, WORKERS);
    let polls = Arc::new(AtomicUsize::new(0));
    // Each says when it has registered, and heartbeats from then on: the
    // observer lists them once all 10,000 are live at once. (Waiting at a
    // barrier instead, the first to register went silent while the last
    // ones took their turn: in CI that took over the 60 s a worker may be
    // silent, and the scheduler rightly declared them lost.)
    let (registered, mut registrations) = tokio::sync::mpsc::unbounded_channel::<()>();
    // Each heartbeats until the observer has listed them all, so none has
    // left by then (a worker done with its heartbeats before a slow
    // listing was seen as Exited: a race in this test, not a loss).
    let (listed, seen) = tokio::sync::watch::channel(false);

    let gate = Arc::new(tokio::sync::Semaphore::new(REGISTERING_AT_ONCE));
    let run = async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..WORKERS {
            let gate = gate.clone();
            let client = client.clone();
            let polls = polls.clone();
            let registered = registered.clone();
            let mut seen = seen.clone();
            tasks.spawn(async move {
                let req = common::simulated::worker(i);
                let permit = gate.acquire().await.expect("the gate stays open");
                let reg = retry(|| client.register(&req)).await;
                drop(permit);
                let _ = registered.send(());
                let interval = Duration::from_millis(reg.heartbeat_interval_ms);
                let mut beats = 0;
                while beats < HEARTBEATS || !*seen.borrow_and_update() {
                    beats += 1;
                    match retry(|| client.poll(reg.worker_id, interval)).await {
                        Instruction::Continue { next_poll_ms } => {
                            tokio::time::sleep(Duration::from_millis(next_poll_ms)).await
                        }
                        other => panic!("unexpected instruction {other:?}"),
                    }
                    polls.fetch_add(1, Ordering::Relaxed);
                }
                let farewell = DeregisterRequest {
                    reason: "simulation over".into(),
                    departure: Departure::Orderly,
                };
                retry(|| client.deregister(reg.worker_id, &farewell)).await;
            });
        }
        for _ in 0..WORKERS {
            registrations
                .recv()
                .await
                .expect("every simulated worker registers");
        }
        // Asked as all 10,000 start polling at once: on 2 cores in a debug
        // build the 4 MB answer once took over the client's 10 s (CI),
        // so the observer retries like the workers do.
        let live = retry(|| client.workers()).await;
        assert_eq!(live.len(), WORKERS);
        assert!(live.iter().all(|w| w.state == WorkerState::Running));
        listed.send(true).unwrap();
        while let Some(done) = tasks.join_next().await {
            done.expect("a simulated worker succeeds");
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("the load test finishes within its time limit");

    assert!(polls.load(Ordering::Relaxed) >= WORKERS * HEARTBEATS);
    let workers = client.workers().await.unwrap();
    assert_eq!(
        workers.len(),
        WORKERS,
        "every simulated worker registered once"
    );
    let lost = workers
        .iter()
        .filter(|w| w.state == WorkerState::Lost)
        .count();
    assert_eq!(lost, 0, "no heartbeating worker may be declared lost");
    assert!(workers.iter().all(|w| w.state == WorkerState::Exited));
}

/// Retries a request while it fails transiently (a connect burst can
/// overflow the listen backlog), a bounded number of times.
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, drover::client::ClientError>>,
{
    let mut delay = Duration::from_millis(10);
    for _ in 0..20 {
        match f().await {
            Ok(v) => return v,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => panic!("request refused: {e}"),
        }
    }
    panic!("a request kept failing");
}
