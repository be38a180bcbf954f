//! The tasks a worker runs and the reports it owes the scheduler: each
//! task in its own runner, ends reported in batches (everything that ended
//! meanwhile goes in one request), retried while the scheduler is briefly
//! away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::devices::{Devices, VISIBLE};
use super::oom::{self, OomCounter};
use super::{FIRST_RETRY, MAX_RETRY};
use crate::client::{ClientError, SchedulerClient};
use crate::protocol::{Assignment, Completion, TaskOutput, TaskRun, WorkerId};
use crate::tasks::runner;

/// How long a task killed by a signal waits before it is reported, to tell
/// a job being cancelled (the agent gets the signal too, and its tasks go
/// back to the queue) from a task killed on its own (reported as failed).
const SIGNAL_GRACE: Duration = Duration::from_secs(1);
/// The longest `flush` waits for reports to be delivered.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// How often `flush` looks.
const FLUSH_POLL: Duration = Duration::from_millis(10);

/// The tasks a worker runs, and the reports it owes the scheduler.
pub(super) struct Work {
    runners: tokio::task::JoinSet<()>,
    reports: mpsc::UnboundedSender<(WorkerId, Completion)>,
    /// Reports sent to the reporter and not yet delivered.
    unreported: Arc<AtomicUsize>,
    /// Runs held: running, or ended with their report not yet delivered.
    /// Every poll lists them, so that a scheduler restarted from its
    /// journal can tell a run it handed out from one that arrived.
    held: Held,
    /// Notified whenever a task ends.
    pub finished: Arc<Notify>,
    /// Set when the agent itself is being stopped.
    terminating: Arc<AtomicBool>,
    /// How to kill each run still going, for cancels.
    kills: Arc<Mutex<HashMap<TaskRun, Arc<Notify>>>>,
    /// Turned on by `stop`: every run still going is killed (and not
    /// reported, so it is requeued), while a run whose task already ended
    /// still reports how.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The worker's GPUs not held by a task.
    devices: Devices,
    /// Out-of-memory kills in the worker's memory cgroup.
    oom: Arc<OomCounter>,
}

/// The runs a worker holds.
type Held = Arc<Mutex<std::collections::BTreeSet<(u64, u32)>>>;

/// Delivers task reports, retrying while the scheduler is briefly away.
/// A report the scheduler refuses (too large, malformed) is replaced by a
/// failure that says so, so its task fails with a reason instead of
/// staying "running" for ever.
async fn report(client: &SchedulerClient, id: WorkerId, batch: &[Completion], death: Duration) {
    match deliver(client, id, batch, death).await {
        Ok(()) => {}
        Err(e @ (ClientError::BadRequest(_) | ClientError::TooLarge { .. })) => {
            tracing::warn!(tasks = batch.len(), error = %e, "the scheduler refused task reports; reporting them as failed");
            let stubs: Vec<Completion> = batch.iter().map(|c| refused(c, &e)).collect();
            if let Err(e) = deliver(client, id, &stubs, death).await {
                tracing::warn!(tasks = batch.len(), error = %e, "could not report tasks");
            }
        }
        Err(e) => tracing::warn!(tasks = batch.len(), error = %e, "could not report tasks"),
    }
}

/// The report of a run whose own report was refused: a failure, with why.
fn refused(c: &Completion, why: &ClientError) -> Completion {
    Completion {
        task: c.task,
        attempt: c.attempt,
        output: TaskOutput {
            exit_code: None,
            error: Some(format!(
                "its report was refused by the scheduler ({why}); it exited with {:?}; its output is in the worker's log directory",
                c.output.exit_code
            )),
            millis: c.output.millis,
            stdout_bytes: c.output.stdout_bytes,
            stdout_file: c.output.stdout_file.clone(),
            ..Default::default()
        },
    }
}

/// Sends `batch`, retrying transient failures until `death` has passed.
async fn deliver(
    client: &SchedulerClient,
    id: WorkerId,
    batch: &[Completion],
    death: Duration,
) -> Result<(), ClientError> {
    let start = Instant::now();
    let mut retry = FIRST_RETRY;
    loop {
        match client.done(id, batch).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && start.elapsed() < death => {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Delivers what the runners send, batching what ended meanwhile.
async fn reporter(
    client: SchedulerClient,
    death: Duration,
    mut rx: mpsc::UnboundedReceiver<(WorkerId, Completion)>,
    pending: Arc<AtomicUsize>,
    held: Held,
) {
    let delivered = |batch: &[Completion]| {
        let mut held = held.lock();
        for c in batch {
            held.remove(&(c.task.0, c.attempt));
        }
        pending.fetch_sub(batch.len(), Ordering::SeqCst);
    };
    while let Some((id, first)) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok((other, done)) = rx.try_recv() {
            if other == id {
                batch.push(done);
            } else {
                let one = [done];
                report(&client, other, &one, death).await;
                delivered(&one);
            }
        }
        report(&client, id, &batch, death).await;
        delivered(&batch);
    }
}

impl Work {
    pub fn new(client: SchedulerClient, death: Duration, gpus: Vec<String>) -> Work {
        let (tx, rx) = mpsc::unbounded_channel();
        let unreported = Arc::new(AtomicUsize::new(0));
        let held = Held::default();
        tokio::spawn(reporter(
            client,
            death,
            rx,
            unreported.clone(),
            held.clone(),
        ));
        Work {
            runners: tokio::task::JoinSet::new(),
            reports: tx,
            unreported,
            held,
            finished: Arc::new(Notify::new()),
            terminating: Arc::new(AtomicBool::new(false)),
            kills: Arc::default(),
            stopping: tokio::sync::watch::channel(false).0,
            devices: Devices::new(gpus),
            oom: Arc::new(OomCounter::of_this_process()),
        }
    }

    /// Starts the tasks the scheduler sent.
    pub fn start(
        &mut self,
        worker: WorkerId,
        tasks: Vec<Assignment>,
        logs: Option<Arc<crate::private_fs::PrivateDir>>,
    ) {
        for mut a in tasks {
            let lease = self.devices.take(a.gpus);
            if let Some(visible) = lease.as_ref().and_then(|l| self.devices.visible(l)) {
                a.env.insert(VISIBLE.into(), visible);
            }
            let reports = self.reports.clone();
            let unreported = self.unreported.clone();
            let finished = self.finished.clone();
            let terminating = self.terminating.clone();
            let logs = logs.clone();
            let oom = self.oom.clone();
            let run = TaskRun {
                task: a.task,
                attempt: a.attempt,
            };
            let kill = Arc::new(Notify::new());
            self.kills.lock().insert(run, kill.clone());
            self.held.lock().insert((run.task.0, run.attempt));
            let held = self.held.clone();
            let kills = self.kills.clone();
            let mut stopping = self.stopping.subscribe();
            tracing::debug!(task = %a.task, attempt = a.attempt, argv = ?a.argv, "running task");
            self.runners.spawn(async move {
                let cancelled = Arc::new(AtomicBool::new(false));
                let flag = cancelled.clone();
                let on_cancel = async move {
                    tokio::select! {
                        () = kill.notified() => flag.store(true, Ordering::SeqCst),
                        _ = stopping.wait_for(|stop| *stop) => {}
                    }
                };
                let kills_before = oom.kills();
                let output = match lease {
                    Some(_) => runner::run(&a, logs.as_deref(), on_cancel).await,
                    None => TaskOutput {
                        error: Some(format!(
                            "it holds {} GPUs, more than this worker has free",
                            a.gpus
                        )),
                        ..Default::default()
                    },
                };
                drop(lease);
                let output = oom::judge(output, kills_before, &oom);
                kills.lock().remove(&run);
                if output.exit_code.is_none() && !cancelled.load(Ordering::SeqCst) {
                    if !terminating.load(Ordering::SeqCst) {
                        tokio::time::sleep(SIGNAL_GRACE).await;
                    }
                    if terminating.load(Ordering::SeqCst) {
                        held.lock().remove(&(run.task.0, run.attempt));
                        return; // the job is going: the scheduler requeues the task
                    }
                }
                unreported.fetch_add(1, Ordering::SeqCst);
                let done = Completion {
                    task: a.task,
                    attempt: a.attempt,
                    output,
                };
                if reports.send((worker, done)).is_err() {
                    unreported.fetch_sub(1, Ordering::SeqCst);
                    held.lock().remove(&(run.task.0, run.attempt));
                }
                finished.notify_one();
            });
        }
    }

    /// Kills these runs (their whole process groups); each is reported
    /// once it is dead, which frees its cores on the scheduler.
    pub fn cancel(&self, runs: &[TaskRun]) {
        let kills = self.kills.lock();
        for run in runs {
            if let Some(kill) = kills.get(run) {
                tracing::info!(task = %run.task, attempt = run.attempt, "cancelled: killing the task");
                kill.notify_one();
            }
        }
    }

    /// The runs it holds: running, or ended and not yet reported.
    pub fn held(&self) -> Vec<TaskRun> {
        self.held
            .lock()
            .iter()
            .map(|&(task, attempt)| TaskRun {
                task: crate::protocol::TaskId(task),
                attempt,
            })
            .collect()
    }

    /// How many tasks still run.
    pub fn running(&mut self) -> usize {
        while self.runners.try_join_next().is_some() {}
        self.runners.len()
    }

    /// Kills the running tasks without reporting them: the scheduler has
    /// already given them to other workers.
    pub fn abandon(&mut self) {
        self.runners.abort_all();
        self.held.lock().clear();
    }

    /// Stops for good: kills the tasks still running and waits until they
    /// are gone, then delivers the reports of those that ended first, so
    /// that the scheduler requeues exactly the tasks that did not finish.
    /// (The runners are told, not aborted: a task that exited just as the
    /// job was cancelled has done its work, and aborting its runner before
    /// it collected the exit would lose the report and run it again.)
    pub async fn stop(&mut self) {
        self.terminating.store(true, Ordering::SeqCst);
        self.stopping.send_replace(true);
        while self.runners.join_next().await.is_some() {}
        self.flush().await;
    }

    /// Waits (bounded) until every finished task has been reported.
    pub async fn flush(&self) {
        let start = Instant::now();
        while self.unreported.load(Ordering::SeqCst) > 0 && start.elapsed() < FLUSH_LIMIT {
            tokio::time::sleep(FLUSH_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TaskId;

    #[test]
    fn a_refused_report_becomes_a_failure_that_says_why() {
        let done = Completion {
            task: TaskId(7),
            attempt: 2,
            output: TaskOutput {
                exit_code: Some(0),
                stdout: "x".repeat(1000),
                stdout_bytes: 1000,
                ..Default::default()
            },
        };
        let why = ClientError::TooLarge {
            what: "the request".into(),
            limit: 8 << 20,
        };
        let stub = refused(&done, &why);
        assert_eq!((stub.task, stub.attempt), (TaskId(7), 2));
        assert_eq!(stub.output.exit_code, None);
        assert!(stub.output.stdout.is_empty());
        let error = stub.output.error.unwrap();
        assert!(
            error.contains("report was refused") && error.contains("larger than"),
            "{error}"
        );
    }
}
