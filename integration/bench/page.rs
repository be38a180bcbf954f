//! The status page (`cargo bench --bench page`; issue 20), on the local
//! Slurm, side by side in one run:
//!
//! 1. page weight (the page, its script and style sheet) and time to first
//!    render in headless Chromium (the page parsed and its chart drawn, as
//!    the page's script records it) for a pool of 1,000 held jobs, against
//!    one of 10; and the bytes of one live update (what every open page
//!    asks for every refresh) as sent gzipped and plain;
//! 2. the CPU the process holding a 32-worker pool (and its scheduler)
//!    uses with 5 pages open against none, taking turns at going first.
//!    The 5 pages are 5 pollers in a child process asking for the page's
//!    update every refresh (what an open page asks for), not 5 browsers,
//!    so that their asking costs this process nothing.
//!
//! Under `cargo test` it is a smoke run (small sizes, short windows): its
//! figures are no measurement.

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::cluster::SlurmCluster;
use drover::slurm::{Slurm, SlurmCli};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--poll-pages") {
        return poll_pages(&args[at + 1..]);
    }
    let measuring = args.iter().any(|a| a == "--bench");
    let (big, workers, window, rounds) = match measuring {
        true => (1000, 32, Duration::from_secs(60), 2),
        false => (20, 2, Duration::from_secs(3), 1),
    };
    if !measuring {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
    }
    let Some(browser) = common::browser::chromium() else {
        return;
    };
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| common::CONF.into());
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let slurm: Arc<dyn Slurm> = Arc::new(SlurmCli::new().with_conf(&conf));
    common::drained(&conf);
    let small = rt.block_on(page_of(slurm.clone(), 10, &conf, dir.path(), &browser));
    common::drained(&conf);
    let large = rt.block_on(page_of(slurm.clone(), big, &conf, dir.path(), &browser));
    println!(
        "page weight: {big} jobs {:.1} KiB, 10 jobs {:.1} KiB ({:.1}x); time to first render: {big} jobs {:.0} ms, 10 jobs {:.0} ms ({:.2}x)",
        large.bytes as f64 / 1024.0,
        small.bytes as f64 / 1024.0,
        large.bytes as f64 / small.bytes as f64,
        large.render_ms,
        small.render_ms,
        large.render_ms / small.render_ms.max(1.0),
    );
    for (n, f) in [(10, &small), (big, &large)] {
        println!(
            "update per refresh: {n} jobs, the whole live part (a page's first) {:.1} KiB gzipped, {:.1} KiB plain ({:.2}x); from the page's version a refresh later {:.2} KiB gzipped, {:.2} KiB plain ({:.4}x of the whole plain)",
            f.update_gzip as f64 / 1024.0,
            f.update_plain as f64 / 1024.0,
            f.update_gzip as f64 / f.update_plain.max(1) as f64,
            f.next_gzip as f64 / 1024.0,
            f.next_plain as f64 / 1024.0,
            f.next_plain as f64 / f.update_plain.max(1) as f64,
        );
    }
    common::drained(&conf);
    let (none, five) = rt.block_on(cpu_with_pages(
        slurm,
        workers,
        window,
        rounds,
        &conf,
        dir.path(),
    ));
    println!(
        "CPU of the pool's process holding {workers} workers: 5 pages open {:.2} s/min, none {:.2} s/min ({:.2}x)",
        five,
        none,
        five / none.max(1e-9)
    );
}

fn spec(name: &str, dir: &std::path::Path, held: bool) -> drover::config::JobSpec {
    let directives = if held {
        vec!["--hold".to_string()]
    } else {
        Vec::new()
    };
    drover::config::JobOptions::new()
        .job_name(name)
        .cores(1u32)
        .memory("100MB".parse::<drover::config::Memory>().unwrap())
        .interface("ib0")
        .log_directory(dir)
        .job_extra_directives(directives)
        .drover_bin(env!("CARGO_BIN_EXE_drover"))
        .build()
        .unwrap()
}

struct PageFigures {
    bytes: usize,
    render_ms: f64,
    /// One live update as a page asks for it every refresh: as sent to a
    /// browser that takes gzip, and without.
    update_gzip: usize,
    update_plain: usize,
    /// The next update, a refresh later, for a page with the first one.
    next_gzip: usize,
    next_plain: usize,
}

/// The bytes of one live update (`/ui/update`, or from the page's
/// version with `since`), with and without gzip.
async fn update_bytes(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    since: Option<u64>,
) -> (usize, usize) {
    let since = since.map(|v| format!("?since={v}")).unwrap_or_default();
    let mut sizes = [0, 0];
    for (i, encoding) in ["gzip", "identity"].iter().enumerate() {
        let r = http
            .get(format!("{base}/ui/update{since}"))
            .bearer_auth(token)
            .header("accept-encoding", *encoding)
            .send()
            .await
            .unwrap();
        let gzipped = r.headers().get("content-encoding").is_some();
        assert_eq!(gzipped, i == 0, "gzip only when asked");
        sizes[i] = r.bytes().await.unwrap().len();
    }
    (sizes[0], sizes[1])
}

/// The page's update, as a page at version `since` asks for it.
async fn page_update(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    since: Option<u64>,
) -> drover::protocol::PageUpdate {
    let since = since.map(|v| format!("?since={v}")).unwrap_or_default();
    let r = http
        .get(format!("{base}/ui/update{since}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// Which lines the update from `version` brings (the same answer as
/// measured, made once this refresh): how many, and the first few.
async fn show_edits(http: &reqwest::Client, base: &str, token: &str, version: u64, jobs: usize) {
    use drover::protocol::{LineEdit, LiveChange};
    let update = page_update(http, base, token, Some(version)).await;
    let added: Vec<String> = match update.live {
        LiveChange::Edits { edits } => edits
            .into_iter()
            .filter_map(|e| match e {
                LineEdit::Add(lines) => Some(lines),
                LineEdit::Keep(_) | LineEdit::Drop(_) => None,
            })
            .flatten()
            .collect(),
        LiveChange::Same => return println!("{jobs} jobs: a refresh later nothing changed"),
        LiveChange::Whole { .. } => {
            return println!("{jobs} jobs: a refresh later the update is the whole part")
        }
    };
    println!(
        "{jobs} jobs: a refresh later the update adds {} lines, first:",
        added.len()
    );
    for line in added.iter().take(3) {
        println!("  {}", line.chars().take(160).collect::<String>());
    }
}

/// A pool of `jobs` held jobs: its page's weight, and the time Chromium
/// takes to render it (median of 3 loads).
async fn page_of(
    slurm: Arc<dyn Slurm>,
    jobs: usize,
    conf: &str,
    dir: &std::path::Path,
    browser: &std::path::Path,
) -> PageFigures {
    let mut options = common::cluster_options(conf);
    options.arrays = true;
    let cluster = SlurmCluster::new(spec("bench-page", dir, true), options, slurm)
        .await
        .unwrap();
    cluster.scale(jobs);
    let start = Instant::now();
    // Listed, and held as Slurm says (the last array's tasks are listed
    // a moment before their reason is): the pool at rest, as a page
    // mostly sees it.
    let held = |j: &drover::protocol::JobStatus| j.reason.as_deref() == Some("JobHeldUser");
    while cluster.status().jobs.len() < jobs || !cluster.status().jobs.iter().all(held) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{jobs} jobs not listed and held"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let http = drover::tls::http_client_builder(cluster.scheduler().fingerprint())
        .build()
        .unwrap();
    let base = cluster.scheduler().url();
    let token = cluster.scheduler().token().expose().to_string();
    let mut bytes = 0;
    for path in ["/ui", "/ui/page.js", "/ui/page.css"] {
        let body = http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(body.status().is_success(), "{path}: {}", body.status());
        bytes += body.bytes().await.unwrap().len();
    }
    let (update_gzip, update_plain) = update_bytes(&http, &base, &token, None).await;
    // A page that has that version, a refresh later: what changed since
    // (the clock, the rate) rather than the whole part again.
    let version = page_update(&http, &base, &token, None).await.version;
    tokio::time::sleep(
        common::cluster_options(conf).scheduler.page_refresh + Duration::from_millis(1100),
    )
    .await;
    let next = update_bytes(&http, &base, &token, Some(version)).await;
    show_edits(&http, &base, &token, version, jobs).await;
    let mut times = Vec::new();
    for _ in 0..3 {
        let code: drover::protocol::DashboardCode = http
            .post(format!("{base}/v1/dashboard/code"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!("{base}/ui/login?code={}", code.code);
        // In real time: the first render is what is measured.
        let dom = common::browser::headless(browser, &url, &["--dump-dom"]);
        let shown = dom.matches("data-job=\"").count();
        assert_eq!(shown, jobs, "the page lists {shown} of {jobs} jobs");
        let ms = dom
            .split("data-first-render-ms=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|n| n.parse::<f64>().ok())
            .expect("the page recorded its first render");
        times.push(ms);
    }
    cluster.close().await.unwrap();
    PageFigures {
        bytes,
        render_ms: common::median(times),
        update_gzip,
        update_plain,
        next_gzip: next.0,
        next_plain: next.1,
    }
}

/// CPU seconds per minute of this process (the pool and its scheduler)
/// with no page open and with 5, `rounds` windows of each.
async fn cpu_with_pages(
    slurm: Arc<dyn Slurm>,
    workers: usize,
    window: Duration,
    rounds: usize,
    conf: &str,
    dir: &std::path::Path,
) -> (f64, f64) {
    let cluster = SlurmCluster::new(
        spec("bench-page-cpu", dir, false),
        common::cluster_options(conf),
        slurm,
    )
    .await
    .unwrap();
    cluster.scale(workers);
    cluster
        .wait_for_workers(workers, Duration::from_secs(300))
        .await
        .unwrap();
    let (mut none, mut five) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for open in [round % 2 == 1, round % 2 == 0] {
            let readers = open.then(|| {
                let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--poll-pages",
                        &cluster.scheduler().url(),
                        cluster.scheduler().token().expose(),
                        &cluster.scheduler().fingerprint().unwrap().to_string(),
                        "5",
                        &cluster
                            .scheduler()
                            .config()
                            .page_refresh
                            .as_millis()
                            .to_string(),
                    ])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                // The child says once each of its 5 pollers had an update.
                let mut ready = [0u8; 6];
                child
                    .stdout
                    .as_mut()
                    .unwrap()
                    .read_exact(&mut ready)
                    .unwrap();
                common::KillOnDrop(child)
            });
            let cpu = cpu_seconds();
            tokio::time::sleep(window).await;
            let per_min = (cpu_seconds() - cpu) * 60.0 / window.as_secs_f64();
            drop(readers);
            println!(
                "round {}: {} pages open: {per_min:.2} CPU s/min",
                round + 1,
                if open { 5 } else { 0 }
            );
            match open {
                true => five.push(per_min),
                false => none.push(per_min),
            }
        }
    }
    cluster.close().await.unwrap();
    (common::median(none), common::median(five))
}

/// This process's user and system CPU time so far.
fn cpu_seconds() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

/// The child: `N` pollers of the page's update at `URL` with `TOKEN` (its
/// certificate pinned to `PIN`), each every `REFRESH_MS` as an open page
/// asks, until killed; says "ready\n" once each had an update.
fn poll_pages(args: &[String]) {
    let (url, token) = (args[0].clone(), args[1].clone());
    let pin: drover::tls::Fingerprint = args[2].parse().unwrap();
    let n = args[3].parse::<usize>().unwrap();
    let every = Duration::from_millis(args[4].parse().unwrap());
    let rt = common::runtime();
    rt.block_on(async {
        let http = drover::tls::http_client_builder(Some(pin)).build().unwrap();
        // As an open page asks: from the version it has.
        let get = |http: reqwest::Client, url: String, token: String, since: Option<u64>| async move {
            let since = since.map(|v| format!("?since={v}")).unwrap_or_default();
            let r = http
                .get(format!("{url}/ui/update{since}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.json::<drover::protocol::PageUpdate>().await.unwrap().version
        };
        let mut versions = Vec::new();
        for _ in 0..n {
            versions.push(get(http.clone(), url.clone(), token.clone(), None).await);
        }
        println!("ready");
        let mut pollers = Vec::new();
        for mut version in versions {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            pollers.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    version = get(http.clone(), url.clone(), token.clone(), Some(version)).await;
                }
            }));
        }
        for p in pollers {
            let _ = p.await;
        }
    });
}
