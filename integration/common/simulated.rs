//! Workers simulated in-process over the real protocol, for load tests and
//! benchmarks that need thousands of them.

use drover::protocol::{
    Assignment, Completion, RegisterRequest, SlurmPlacement, TaskId, TaskOutput,
};

/// The registration of made-up worker number `i`.
pub fn worker(i: usize) -> RegisterRequest {
    RegisterRequest {
        name: format!("sim-{i}"),
        slurm: SlurmPlacement {
            job_id: Some(1_000_000 + i as u64),
            ..Default::default()
        },
        hostname: format!("node{:03}", i % 500),
        address: format!("10.1.{}.{}", i / 250 % 256, i % 250),
        cores: 16,
        memory_bytes: 64 << 30,
        allocation_end: Some(2_000_000_000),
        drain_at_ms: None,
        pid: 100_000 + i as u32,
        kind: Default::default(),
        dask_name: None,
        offer: Default::default(),
    }
}

/// What simulated session workers did, counted across all of them.
#[derive(Debug, Default)]
pub struct Counts {
    /// Registered (once each).
    pub registered: std::sync::atomic::AtomicUsize,
    /// Sessions opened (again after each one lost).
    pub sessions: std::sync::atomic::AtomicUsize,
    /// Answers to heartbeats.
    pub answers: std::sync::atomic::AtomicUsize,
    /// Instructions other than an acknowledgement or tasks (none is
    /// expected).
    pub unexpected: std::sync::atomic::AtomicUsize,
    /// When each task was received, by task.
    pub received: std::sync::Mutex<std::collections::HashMap<TaskId, std::time::Instant>>,
    /// Notified at each task received.
    pub receipt: tokio::sync::Notify,
}

impl Counts {
    /// Records that the tasks of `run` arrived now.
    pub fn receive(&self, run: &[Assignment]) {
        let now = std::time::Instant::now();
        let mut received = self.received.lock().unwrap();
        received.extend(run.iter().map(|a| (a.task, now)));
        self.receipt.notify_waiters();
    }

    /// When `task` arrived at a worker, waiting until it has.
    pub async fn received(&self, task: TaskId) -> std::time::Instant {
        loop {
            let notified = self.receipt.notified();
            if let Some(at) = self.received.lock().unwrap().get(&task) {
                return *at;
            }
            notified.await;
        }
    }
}

/// What a simulated worker reports for tasks it was given: each ran, at
/// once, and succeeded.
pub fn succeeded(run: &[Assignment]) -> Vec<Completion> {
    run.iter()
        .map(|a| Completion {
            task: a.task,
            attempt: a.attempt,
            output: TaskOutput {
                exit_code: Some(0),
                ..Default::default()
            },
        })
        .collect()
}

/// Simulated worker `i`: registers, holds its session (the real
/// protocol, as `drover worker` does), heartbeats at the interval the
/// scheduler gives and reports every task it is given as done at once. It
/// opens a new session when one is lost (a scheduler restarted from its
/// journal), after a pause spread by `i` as agents spread theirs. Ends
/// when `stop` turns true; returns its id.
pub async fn hold_session(
    client: drover::client::SchedulerClient,
    i: usize,
    counts: std::sync::Arc<Counts>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> drover::protocol::WorkerId {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;
    let req = worker(i);
    let reg = loop {
        match client.register(&req).await {
            Ok(r) => break r,
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("registration refused: {e}"),
        }
    };
    counts.registered.fetch_add(1, Relaxed);
    let interval = Duration::from_millis(reg.heartbeat_interval_ms);
    let spread = Duration::from_millis((i % 1000) as u64);
    while !*stop.borrow() {
        let mut session = match client.open_session(reg.worker_id).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(200) + spread).await;
                continue;
            }
            Err(e) => panic!("session refused: {e}"),
        };
        counts.sessions.fetch_add(1, Relaxed);
        let mut beat = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = beat.tick() => session.heartbeat(false, Vec::new()),
                told = session.next() => match told {
                    Ok(drover::protocol::Instruction::Continue { .. }) => {
                        counts.answers.fetch_add(1, Relaxed);
                    }
                    Ok(drover::protocol::Instruction::Run { tasks }) => {
                        counts.receive(&tasks);
                        if client.done(reg.worker_id, &succeeded(&tasks)).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {
                        // Told to go (declared lost, say): it goes.
                        counts.unexpected.fetch_add(1, Relaxed);
                        return reg.worker_id;
                    }
                    Err(_) => break,
                },
                _ = stop.changed() => return reg.worker_id,
            }
        }
        tokio::time::sleep(spread).await;
    }
    reg.worker_id
}
