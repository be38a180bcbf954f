//! The scheduler's journal, end to end with real processes on loopback: a
//! `drover scheduler --journal` killed with SIGKILL mid-run and started
//! again on the same journal loses nothing and runs nothing twice, and a
//! journal cut mid-record, or not ours, is handled as documented.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{scheduler_process, KillOnDrop};
use drover::client::SchedulerClient;
use drover::journal::{Journal, Op};
use drover::protocol::SchedulerFile;
use drover::tasks::TaskSpec;

fn client(file: &Path) -> SchedulerClient {
    SchedulerClient::from_file(&SchedulerFile::read(file).unwrap())
}

fn worker(file: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["worker", "--cores", "1", "--memory", "100M"])
            .args(["--death-timeout", "60s"])
            .arg("--scheduler-file")
            .arg(file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits, checking every 20 ms, until `ready` holds.
async fn until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A journal scheduler with four workers, `tasks` tasks that append their
/// ids, killed with SIGKILL once `ran` of them have run.
struct KilledRun {
    dir: tempfile::TempDir,
    args: Vec<String>,
    out: std::path::PathBuf,
    /// The address the killed scheduler had.
    address: String,
    workers: Vec<KillOnDrop>,
    ids: Vec<drover::tasks::TaskId>,
    tasks: u64,
    /// A driver's client from before the kill, which follows the file.
    driver: SchedulerClient,
}

async fn killed_mid_run(tasks: u64, ran: usize, heartbeat: &str) -> KilledRun {
    killed_mid_run_when(tasks, ran, heartbeat, &[], |_| true).await
}

/// As `killed_mid_run`, with `extra` scheduler flags, killed once `ready`
/// also holds for the journal.
async fn killed_mid_run_when(
    tasks: u64,
    ran: usize,
    heartbeat: &str,
    extra: &[&str],
    ready: impl Fn(&Path) -> bool,
) -> KilledRun {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("pool.journal");
    let out = dir.path().join("lines");
    let args: Vec<String> = ["--journal", journal.to_str().unwrap()]
        .into_iter()
        .chain(["--heartbeat-interval", heartbeat])
        .chain(extra.iter().copied())
        .map(String::from)
        .collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut scheduler, file) = scheduler_process(dir.path(), &argv).await;
    let address = SchedulerFile::read(&file).unwrap().address;
    let workers: Vec<KillOnDrop> = (0..4).map(|_| worker(&file)).collect();
    let ids = client(&file)
        .submit(&common::appending_tasks(tasks, &out))
        .await
        .unwrap();
    assert_eq!(ids.len() as u64, tasks);
    let driver = SchedulerClient::from_path(&file).unwrap();
    // The event: some tasks have run, four are running.
    until("tasks run", Duration::from_secs(60), || {
        common::appended(&out).len() >= ran && ready(&journal)
    })
    .await;
    scheduler.0.kill().unwrap();
    scheduler.0.wait().unwrap();
    std::fs::remove_file(&file).unwrap();
    KilledRun {
        dir,
        args,
        out,
        address,
        workers,
        ids,
        tasks,
        driver,
    }
}

impl KilledRun {
    /// The scheduler started again on the journal, and its file.
    async fn restart(&self) -> (KillOnDrop, std::path::PathBuf) {
        let argv: Vec<&str> = self.args.iter().map(String::as_str).collect();
        scheduler_process(self.dir.path(), &argv).await
    }

    /// Every task ends, each ran once, and the same four workers did it.
    async fn finishes(self, file: &Path) {
        let at_kill = common::appended(&self.out).len();
        // The driver's client from before: it follows the scheduler's file.
        let done = self
            .driver
            .wait_tasks(Some(&self.ids), Duration::from_millis(200))
            .await
            .unwrap();
        let ran = common::assert_each_task_ran_once(&done, &self.out, self.tasks);
        eprintln!(
            "{at_kill} tasks had run at the restart; {ran} lines for {} tasks",
            self.tasks
        );
        let live = client(file).workers().await.unwrap();
        let running = live.iter().filter(|w| w.state.is_live()).count();
        assert_eq!((live.len(), running), (4, 4), "{live:?}");
        drop(self.workers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_mid_run_continues_from_its_journal_and_each_task_runs_once() {
    let run = killed_mid_run(10_000, 300, "1s").await;
    let (_scheduler, file) = run.restart().await;
    assert_eq!(
        SchedulerFile::read(&file).unwrap().address,
        run.address,
        "the same address, so the workers find it"
    );
    run.finishes(&file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_follow_a_scheduler_restarted_at_another_address() {
    let run = killed_mid_run(2_000, 200, "2s").await;
    // Another server takes the address (and drops whoever connects): the
    // scheduler must listen elsewhere, and say so in its file.
    let taken: std::net::SocketAddr = run.address.trim_start_matches("https://").parse().unwrap();
    let squatter = tokio::net::TcpListener::bind(taken).await.unwrap();
    let squatting = tokio::spawn(async move {
        while let Ok((conn, _)) = squatter.accept().await {
            drop(conn);
        }
    });
    let (_scheduler, file) = run.restart().await;
    let moved = SchedulerFile::read(&file).unwrap().address;
    assert_ne!(moved, run.address, "the old address is taken");
    run.finishes(&file).await;
    squatting.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_compacted_while_it_runs_continues_the_same_and_each_task_runs_once() {
    // 10,000 tasks make a journal of about 2 MB: compacted at 64 KiB, the
    // scheduler writes snapshots as it runs, and is killed after one.
    let extra = ["--journal-compact-after", "64KiB"];
    let run = killed_mid_run_when(10_000, 1_000, "1s", &extra, common::compacted).await;
    let journal = run.dir.path().join("pool.journal");
    let ops = Journal::read(&journal).unwrap();
    let after = ops.len()
        - 2
        - ops
            .iter()
            .filter(|o| matches!(o, Op::SnapshotTasks { .. }))
            .count();
    eprintln!(
        "killed with a compacted journal of {} bytes: a snapshot, then {after} records",
        std::fs::metadata(&journal).unwrap().len()
    );
    let (_scheduler, file) = run.restart().await;
    run.finishes(&file).await;
}

#[tokio::test]
async fn a_journal_cut_mid_record_restarts_at_its_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let args = ["--journal", journal.to_str().unwrap()];
    let (mut scheduler, file) = scheduler_process(dir.path(), &args).await;
    let one = TaskSpec {
        argv: vec!["true".into()],
        ..Default::default()
    };
    client(&file)
        .submit(std::slice::from_ref(&one))
        .await
        .unwrap();
    client(&file).submit(&[one.clone(), one]).await.unwrap();
    scheduler.0.kill().unwrap();
    scheduler.0.wait().unwrap();
    // A crash while the last submission was being written: cut it short.
    let bytes = std::fs::read(&journal).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    f.set_len(bytes.len() as u64 - 5).unwrap();
    drop(f);
    std::fs::remove_file(&file).unwrap();
    let (_scheduler, file) = scheduler_process(dir.path(), &args).await;
    let counts = client(&file).tasks(None, true).await.unwrap().counts;
    assert_eq!(
        counts.unfinished(),
        1,
        "the first submission only: {counts:?}"
    );
}

#[test]
fn a_damaged_or_foreign_journal_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    std::fs::write(&journal, b"not a journal\n").unwrap();
    std::fs::set_permissions(
        &journal,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["scheduler", "--host", "127.0.0.1", "--journal"])
        .arg(&journal)
        .arg("--scheduler-file")
        .arg(dir.path().join("s.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not a journal this drover reads"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&journal).unwrap(), b"not a journal\n");
    assert!(!dir.path().join("s.json").exists(), "nothing served");
}

/// A tmpfs of `kib` KiB at `dir`, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, kib: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_scheduler_with_why_and_its_journal_stays_readable() {
    full_disk(&[]).await;
    // Compacting often: snapshots that no longer fit are given up, and
    // the journal as it was goes on until the disk is full.
    let often = [
        "--journal-compact-after",
        "16KiB",
        "--heartbeat-interval",
        "200ms",
    ];
    full_disk(&often).await;
}

async fn full_disk(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("small"), 256) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs (root is needed) for the full-disk case"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root)");
        return;
    };
    let journal = disk.0.join("j");
    let mut args = vec!["--journal", journal.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (mut scheduler, file) = scheduler_process(dir.path(), &args).await;
    // Tasks with 4 KiB of arguments each, 16 at a time, until the disk is full.
    let batch: Vec<TaskSpec> = (0..16)
        .map(|_| TaskSpec {
            argv: vec!["echo".into(), "x".repeat(4096)],
            ..Default::default()
        })
        .collect();
    let submitter = client(&file);
    let mut acknowledged = 0;
    let refusal = loop {
        match submitter.submit(&batch).await {
            Ok(ids) => acknowledged += ids.len(),
            Err(e) => break e.to_string(),
        }
        if !extra.is_empty() && acknowledged == batch.len() {
            until("compacted", Duration::from_secs(10), || {
                common::compacted(&journal)
            })
            .await;
        }
        assert!(acknowledged < 100_000, "the disk never filled");
    };
    assert!(
        refusal.contains("journal cannot be written") && refusal.contains("No space left"),
        "the refusal says why: {refusal}"
    );
    // It stops by itself, exit 1, with why.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = scheduler.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1));
    // The journal reads back, with every acknowledged submission, once
    // there is room (a copy on the ordinary disk). Submissions went one at
    // a time, so the refused one's record is the one cut short, and
    // dropped: exactly the acknowledged ones come back.
    let roomy = dir.path().join("roomy.journal");
    std::fs::copy(&journal, &roomy).unwrap();
    drop(disk);
    std::fs::remove_file(&file).unwrap();
    let args = ["--journal", roomy.to_str().unwrap()];
    let (_again, file) = scheduler_process(dir.path(), &args).await;
    let counts = client(&file).tasks(None, true).await.unwrap().counts;
    assert_eq!(counts.unfinished(), acknowledged, "{counts:?}");
    if !extra.is_empty() {
        assert!(
            common::compacted(&roomy),
            "it was compacted before the disk filled"
        );
    }
}

/// Accounting kept (the default) reports a task's own time as busy;
/// the same journal continued with `--no-accounting` keeps none of it,
/// counts no run after, and says so (`source: off`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_off_keeps_no_busy_time_and_its_report_says_so() {
    use drover::protocol::ReportSource;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("pool.journal");
    let on = ["--journal", journal.to_str().unwrap()];
    let (mut scheduler, file) = scheduler_process(dir.path(), &on).await;
    let _worker = worker(&file);
    let sleep = TaskSpec {
        argv: vec!["sleep".into(), "1".into()],
        cores: 1,
        ..Default::default()
    };
    let driver = SchedulerClient::from_path(&file).unwrap();
    let first = driver.submit(std::slice::from_ref(&sleep)).await.unwrap();
    let every = Duration::from_millis(20);
    driver.wait_tasks(Some(&first), every).await.unwrap();
    let kept = driver.report().await.unwrap();
    assert_ne!(kept.source, ReportSource::Off);
    let busy = kept.total.busy_core_seconds;
    assert!((1.0..1.5).contains(&busy), "a 1 s task: {kept:?}");

    scheduler.0.kill().unwrap();
    scheduler.0.wait().unwrap();
    std::fs::remove_file(&file).unwrap();
    let off = ["--journal", journal.to_str().unwrap(), "--no-accounting"];
    let (_scheduler, file) = scheduler_process(dir.path(), &off).await;
    // The worker follows the scheduler back and runs another.
    let second = client(&file).submit(&[sleep]).await.unwrap();
    driver.wait_tasks(Some(&second), every).await.unwrap();
    let report = driver.report().await.unwrap();
    assert_eq!(report.source, ReportSource::Off, "{report:?}");
    assert_eq!(report.total.busy_core_seconds, 0.0, "{report:?}");
    assert!(report.groups.is_empty(), "{report:?}");
    assert_eq!(report.summary(), "accounting is off");
}
