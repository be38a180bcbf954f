//! The control plane without Slurm: a scheduler in this process and real
//! `drover worker` processes registering with it over loopback.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use drover::client::SchedulerClient;
use drover::protocol::{ClusterId, Instruction, SchedulerFile, Token, WorkerState};
use drover::scheduler::{Bind, Scheduler, SchedulerConfig};

const HEARTBEAT: Duration = Duration::from_millis(200);
const MISSED: u32 = 3;

async fn scheduler() -> Scheduler {
    let config = SchedulerConfig {
        heartbeat_interval: HEARTBEAT,
        missed_heartbeats: MISSED,
        ..SchedulerConfig::new(Bind::Host(IpAddr::from([127, 0, 0, 1])))
    };
    Scheduler::start(config).await.unwrap()
}

fn publish(s: &Scheduler, dir: &Path) -> PathBuf {
    let path = dir.join("scheduler.json");
    s.write_scheduler_file(&path).unwrap();
    path
}

fn agent(file: &Path, log: &Path, death: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["worker", "--death-timeout", death, "--scheduler-file"])
        .arg(file)
        .env_remove("SLURM_JOB_ID")
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit, at most `limit`.
async fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_register_appear_in_status_and_retire_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler().await;
    let file = publish(&s, dir.path());
    let mut children: Vec<Child> = (0..50)
        .map(|i| agent(&file, &dir.path().join(format!("w{i}.log")), "10"))
        .collect();
    s.wait_for_workers(50, Duration::from_secs(60))
        .await
        .unwrap();

    let out = common::run_ok(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["status", "--json", "--scheduler-file"])
            .arg(&file),
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.iter().all(|w| w["state"] == "running"));

    let table = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["status", "--scheduler-file"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("WORKER") && text.contains("50 workers"),
        "{text}"
    );

    pages_and_counts_cover_the_pool(&file, 50).await;

    let retire = common::run_ok(
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "retire",
                "--all",
                "--reason",
                "test is over",
                "--scheduler-file",
            ])
            .arg(&file),
    );
    assert_eq!(
        String::from_utf8_lossy(&retire.stdout).trim(),
        "retiring 50 workers"
    );
    for (i, child) in children.iter_mut().enumerate() {
        let status = exit_within(child, Duration::from_secs(10)).await;
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "worker {i} did not retire cleanly"
        );
    }
    assert!(s.workers().iter().all(|w| w.state == WorkerState::Exited));
    let reason = s.workers()[0].exit_reason.clone().unwrap();
    assert!(
        reason.contains("retired by the scheduler (test is over)"),
        "{reason}"
    );
    let log = read(&dir.path().join("w0.log"));
    assert!(log.contains("registered"), "{log}");
    assert!(log.contains("exiting: retired by the scheduler"), "{log}");
}

/// The listing of a pool of `n`, read in pages of 20 over HTTP, holds each
/// worker once in id order, and the counts alone say the same; a page size
/// out of range is refused with the accepted one.
async fn pages_and_counts_cover_the_pool(file: &Path, n: usize) {
    let client = drover::client::SchedulerClient::from_path(file).unwrap();
    let counts = client.worker_counts().await.unwrap();
    assert_eq!((counts.running, counts.total()), (n as u64, n as u64));
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = client.worker_page(after, 20).await.unwrap();
        assert!(page.workers.len() <= 20);
        assert_eq!(page.counts, counts);
        seen.extend(page.workers.iter().map(|w| w.id));
        after = seen.last().copied();
        if !page.more {
            break;
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), &seen), (n, &sorted));
    for bad in [0, 1001] {
        let e = client.worker_page(None, bad).await.unwrap_err().to_string();
        assert!(
            e.contains("refused the request")
                && e.contains(&format!("limit: {bad} is not a page size; give 1 to 1000")),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_declared_lost_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler().await;
    let file = publish(&s, dir.path());
    let mut child = agent(&file, &dir.path().join("w.log"), "10");
    s.wait_for_workers(1, Duration::from_secs(20))
        .await
        .unwrap();
    child.kill().unwrap(); // SIGKILL: no goodbye
    child.wait().unwrap();
    let killed = Instant::now();
    let bound = s.config().lost_after() + HEARTBEAT; // plus one check interval and slack
    loop {
        if s.workers()[0].state == WorkerState::Lost {
            break;
        }
        assert!(
            killed.elapsed() < bound + Duration::from_secs(1),
            "not declared lost {:?} after SIGKILL",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reason = s.workers()[0].exit_reason.clone().unwrap();
    assert!(reason.starts_with("no heartbeat for"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_scheduler_makes_every_agent_exit_within_its_death_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler().await;
    let file = publish(&s, dir.path());
    let mut children: Vec<Child> = (0..5)
        .map(|i| agent(&file, &dir.path().join(format!("w{i}.log")), "2"))
        .collect();
    s.wait_for_workers(5, Duration::from_secs(20))
        .await
        .unwrap();
    s.stop();
    let stopped = Instant::now();
    for child in &mut children {
        let status = exit_within(child, Duration::from_secs(6)).await;
        assert_eq!(status.and_then(|s| s.code()), Some(1));
    }
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "exited before the death timeout: {took:?}"
    );
    let log = read(&dir.path().join("w0.log"));
    assert!(log.contains("scheduler unreachable for"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_scheduler_never_answers_exits_after_its_death_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // A scheduler file for a port nobody listens on: a job that started
    // after its driver died.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let file = dir.path().join("gone.json");
    made_up_file(format!("http://127.0.0.1:{port}"))
        .write(&file)
        .unwrap();
    let started = Instant::now();
    let mut child = agent(&file, &dir.path().join("w.log"), "1.5");
    let status = exit_within(&mut child, Duration::from_secs(6)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let log = read(&dir.path().join("w.log"));
    assert!(log.contains("scheduler unreachable for"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_agent_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler().await;
    let mut forged = s.scheduler_file();
    forged.token = Token::generate();
    let file = dir.path().join("forged.json");
    forged.write(&file).unwrap();
    let mut child = agent(&file, &dir.path().join("w.log"), "10");
    let status = exit_within(&mut child, Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    let log = read(&dir.path().join("w.log"));
    assert!(log.contains("refused our token (401)"), "{log}");
    assert!(s.workers().is_empty());

    // No token at all is refused too, on every route.
    let http = drover::tls::http_client_builder(s.fingerprint())
        .build()
        .unwrap();
    for path in ["/v1/workers", "/v1/workers/1/poll"] {
        let r = http.get(format!("{}{path}", s.url())).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED, "{path}");
    }
    let client = SchedulerClient::new(s.url(), Token::generate(), s.fingerprint());
    assert!(client
        .workers()
        .await
        .unwrap_err()
        .to_string()
        .contains("401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_deregister_or_drain_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler().await;
    let file = publish(&s, dir.path());
    let mut term = agent(&file, &dir.path().join("term.log"), "10");
    let mut usr1 = agent(&file, &dir.path().join("usr1.log"), "10");
    s.wait_for_workers(2, Duration::from_secs(20))
        .await
        .unwrap();
    // The scheduler has them; now wait until each agent has its answer
    // too. A signal before that finds an agent that does not know it is
    // registered, which leaves without deregistering (seen under load).
    let logs = [dir.path().join("term.log"), dir.path().join("usr1.log")];
    common::until(
        "both agents know they are registered",
        Duration::from_secs(20),
        || logs.iter().all(|l| read(l).contains("registered")),
    )
    .await;
    let signal = |child: &Child, sig: &str| {
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
    };
    signal(&term, "-TERM");
    signal(&usr1, "-USR1");
    assert_eq!(
        exit_within(&mut term, Duration::from_secs(5))
            .await
            .and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(
        exit_within(&mut usr1, Duration::from_secs(5))
            .await
            .and_then(|s| s.code()),
        Some(0)
    );
    let reasons: Vec<String> = s
        .workers()
        .iter()
        .map(|w| {
            assert_eq!(w.state, WorkerState::Exited);
            w.exit_reason.clone().unwrap()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r == "stopped by SIGTERM"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("drained on SIGUSR1")),
        "{reasons:?}"
    );
}

/// A scheduler file for a plain-HTTP scheduler at `address`, with a
/// fresh cluster id and token.
fn made_up_file(address: String) -> SchedulerFile {
    SchedulerFile {
        address,
        cluster_id: ClusterId::generate(),
        token: Token::generate(),
        certificate: None,
        pid: 1,
        started_at: 0,
        dask: None,
    }
}

fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn missing_or_corrupt_scheduler_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "not json").unwrap();
    private(&corrupt);
    // A good file that others may read, and one another user made.
    let good = made_up_file("http://127.0.0.1:1".into());
    let exposed = dir.path().join("exposed.json");
    good.write(&exposed).unwrap();
    std::fs::set_permissions(
        &exposed,
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let foreign = dir.path().join("foreign.json");
    good.write(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let cases: [(PathBuf, &str); 4] = [
        (
            dir.path().join("missing.json"),
            "cannot read scheduler file",
        ),
        (corrupt, "is not valid"),
        (exposed, "may be read or changed by others (mode 0640)"),
        (foreign, "belongs to uid 65534, not to you"),
    ];
    for (path, expected) in cases {
        for cmd in ["worker", "status"] {
            let out = Command::new(env!("CARGO_BIN_EXE_drover"))
                .args([cmd, "--scheduler-file"])
                .arg(&path)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
            assert!(err.contains(expected), "{cmd}: {err}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("worker")
        .env_remove("DROVER_SCHEDULER_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scheduler-file"));
}

#[test]
fn a_scheduler_on_a_missing_interface_lists_the_ones_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["scheduler", "--interface", "nosuch0", "--scheduler-file"])
        .arg(dir.path().join("s.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no network interface named `nosuch0`"),
        "{err}"
    );
    assert!(err.contains("lo (127.0.0.1)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_redraws_with_the_tasks_and_ends_when_the_scheduler_is_gone() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler().await;
    let file = publish(&s, dir.path());
    let mut watch = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "status",
            "--watch",
            "--interval",
            "100ms",
            "--scheduler-file",
        ])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Waits for a line that holds `what`.
    let saw = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line with {what:?}"));
        if line.contains(what) {
            return line;
        }
    };
    saw("tasks: 0 waiting, 0 ready, 0 running");
    let spec = drover::tasks::TaskSpec {
        argv: vec!["true".into()],
        ..Default::default()
    };
    s.client().submit(&[spec.clone(), spec]).await.unwrap();
    let line = saw("2 ready");
    assert!(line.contains("ended/s"), "{line}");
    // The scheduler goes: the watch ends by itself, exit 1, with why.
    s.stop();
    let status = tokio::task::spawn_blocking(move || {
        let status = watch.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(1), "{}", status.1);
    assert!(status.1.contains("no longer answers"), "{}", status.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_lets_in_only_a_fresh_code_or_its_session() {
    let s = scheduler().await;
    let dir = tempfile::tempdir().unwrap();
    let file = publish(&s, dir.path());
    let http = drover::tls::http_client_builder(s.fingerprint())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = s.url();
    let get = |path: String, cookie: Option<String>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    // No session, a made-up session, a made-up or oversized code: 401.
    // (Under this cluster's cookie name, so the forged session itself is
    // what is refused.)
    let forged = format!(
        "drover_session_{}={}",
        s.cluster_id(),
        Token::generate().expose()
    );
    for (path, cookie) in [
        ("/ui".to_string(), None),
        ("/ui/update".to_string(), Some(forged.clone())),
        ("/ui/login?code=nope".to_string(), None),
        (format!("/ui/login?code={}", "a".repeat(5_000)), None),
    ] {
        let r = get(path.clone(), cookie).await.unwrap();
        assert!(
            r.status() == 401 || r.status() == 431,
            "{path}: {}",
            r.status()
        );
    }
    // `drover dashboard` prints the URL last; it sends the browser on only
    // to the page's own paths, never to another site.
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["dashboard", "--scheduler-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let path = url.strip_prefix(&base).expect("the URL is the scheduler's");
    let r = get(format!("{path}&next=//evil.example/ui"), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    // The session opens the page and its update; the code is spent.
    let page = get("/ui".into(), Some(session.clone())).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("id=\"chart\""));
    // The first update is the whole live part; one from its version is
    // what changed since, and makes the live part of the next version.
    use drover::protocol::{LiveChange, PageUpdate};
    let update = get("/ui/update".into(), Some(session.clone()));
    let first: PageUpdate = update.await.unwrap().json().await.unwrap();
    let LiveChange::Whole { html } = &first.live else {
        panic!("a page with no version gets the whole part: {first:?}")
    };
    assert!(html.contains("id=\"tasks\""));
    let since = format!("/ui/update?since={}", first.version);
    let next: PageUpdate = get(since, Some(session.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(next.version >= first.version, "{next:?}");
    assert!(!matches!(next.live, LiveChange::Whole { .. }), "{next:?}");
    let after = next.live.apply(html).expect("the edits fit the version");
    assert!(after.contains("id=\"tasks\""));
    let bad = get("/ui/update?since=-1".into(), Some(session))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a version is a number");
    assert_eq!(get(path.to_string(), None).await.unwrap().status(), 401);
}

/// A worker on a session hears of work at once (no heartbeat in between),
/// each heartbeat is answered, and only a known worker with the token gets
/// a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_pushed_work_at_once_and_only_a_known_worker_with_the_token_gets_one() {
    // Heartbeats far apart: a task that arrives before the next one was
    // pushed, not polled for.
    let config = SchedulerConfig {
        heartbeat_interval: Duration::from_secs(60),
        ..SchedulerConfig::new(Bind::Host(IpAddr::from([127, 0, 0, 1])))
    };
    let s = Scheduler::start(config).await.unwrap();
    let client = s.client();
    let reg = client
        .register(&common::simulated::worker(1))
        .await
        .unwrap();
    let mut session = client.open_session(reg.worker_id).await.unwrap();
    session.heartbeat(false, Vec::new());
    let ack = told(&mut session, "a heartbeat is answered").await;
    assert!(matches!(ack, Instruction::Continue { .. }), "{ack:?}");
    let spec = drover::tasks::TaskSpec {
        argv: vec!["true".into()],
        ..Default::default()
    };
    let ids = client.submit(&[spec]).await.unwrap();
    let pushed = told(&mut session, "the task is pushed without a heartbeat").await;
    let Instruction::Run { tasks } = pushed else {
        panic!("expected the task, got {pushed:?}");
    };
    assert_eq!(tasks.iter().map(|t| t.task).collect::<Vec<_>>(), ids);
    // Retiring is pushed too.
    assert!(s.retire(reg.worker_id, "test over"));
    let retire = told(&mut session, "the retirement is pushed").await;
    assert!(matches!(retire, Instruction::Retire { .. }), "{retire:?}");

    let unknown = client
        .open_session(drover::protocol::WorkerId(999_999))
        .await;
    assert!(
        matches!(unknown, Err(drover::client::ClientError::UnknownWorker(_))),
        "{unknown:?}"
    );
    let mut file = s.scheduler_file();
    file.token = Token::generate();
    let stranger = SchedulerClient::from_file(&file);
    let refused = stranger.open_session(reg.worker_id).await;
    assert!(
        matches!(
            refused,
            Err(drover::client::ClientError::Unauthorized { .. })
        ),
        "{refused:?}"
    );
}

/// The session's next instruction, which must come within 10 s.
async fn told(session: &mut drover::client::Session, what: &str) -> Instruction {
    tokio::time::timeout(Duration::from_secs(10), session.next())
        .await
        .expect(what)
        .unwrap()
}
