//! The status page on the real local Slurm, looked at in headless Chromium
//! (Debian's, from `integration/browser/install`): the jobs listed (a
//! screenshot is kept), the pending reason of a job held with `scontrol
//! hold`, a worker's page showing its log's latest line, the chart drawn,
//! live updates arriving, no way in without a login, and a job cancelled
//! from outside shown as Slurm has it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::browser::login_url;
use common::{exclusive, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job};
use drover::cluster::SlurmCluster;
use drover::slurm::JobState;

/// Chromium on `url` with `args`, its page's timers run (virtual time).
fn browse(browser: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--virtual-time-budget=5000"];
    all.extend_from_slice(args);
    common::browser::headless(browser, url, &all)
}

/// A pool of `spec` whose page updates every 500 ms (with `journal`),
/// scaled to `jobs.0` and with `jobs.1` workers registered; its scheduler
/// file, and an HTTP client pinned to it that follows no redirect.
async fn page_pool(
    spec: drover::config::JobSpec,
    journal: Option<std::path::PathBuf>,
    jobs: (usize, usize),
    slurm: common::TestSlurm,
) -> (SlurmCluster, std::path::PathBuf, reqwest::Client) {
    let mut options = test_cluster_options();
    options.journal = journal;
    options.scheduler.page_refresh = Duration::from_millis(500);
    options.scheduler.timeline_interval = Duration::from_millis(500);
    let cluster = SlurmCluster::new(spec, options, slurm).await.unwrap();
    cluster.scale(jobs.0);
    cluster
        .wait_for_workers(jobs.1, Duration::from_secs(60))
        .await
        .unwrap();
    let file = cluster.scheduler_file().to_path_buf();
    let http = drover::tls::http_client_builder(cluster.scheduler().fingerprint())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (cluster, file, http)
}

/// The page's table row of `job`, as the DOM has it.
fn row<'a>(dom: &'a str, job: &str) -> Option<&'a str> {
    let at = dom.find(&format!("data-job=\"{job}\""))?;
    let end = dom[at..].find("</tr>").map_or(dom.len(), |e| at + e);
    Some(&dom[at..end])
}

/// The number an attribute of the page's body or chart holds.
fn count(dom: &str, attribute: &str) -> Option<usize> {
    dom.split(&format!("{attribute}=\""))
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

/// Text as the DOM serializes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_real_browser() {
    let Some(slurm) = local_slurm("status_page") else {
        return;
    };
    let Some(browser) = common::browser::chromium() else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    // A whole node a job: two run, the third waits for Resources.
    let spec = test_job("drover-page", 16, logs.path()).build().unwrap();
    let (cluster, file, http) = page_pool(spec, None, (3, 2), slurm).await;

    // No way in without a login.
    let base = cluster.scheduler().url();
    for path in [
        "/ui",
        "/ui/update",
        "/ui/workers/w1",
        "/ui/login?code=guess",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let used = login_url(&file, "/ui");
    let first = http.get(&used).send().await.unwrap();
    assert_eq!(first.status(), 303);
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let again = http.get(&used).send().await.unwrap();
    assert_eq!(again.status(), 401, "a login code is good once");

    // The waiting job, held from outside: its reason is Slurm's own.
    let pending = cluster
        .status()
        .jobs
        .into_iter()
        .find(|j| j.state == JobState::Pending)
        .expect("a pending job");
    let held = pending.job.to_string();
    slurm_cmd("scontrol", &["hold", &held]);
    let reason = loop {
        let r = slurm_cmd("squeue", &["-h", "-j", &held, "-o", "%r"]);
        let shown = cluster
            .status()
            .jobs
            .iter()
            .find(|j| j.job.to_string() == held)
            .and_then(|j| j.reason.clone());
        if r.trim().starts_with("JobHeld") && shown.as_deref() == Some(r.trim()) {
            break r.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // Tasks by state: 20 that succeed and one that fails.
    let client = cluster.client();
    let mut tasks: Vec<drover::tasks::TaskSpec> = (0..20)
        .map(|_| drover::tasks::TaskSpec {
            argv: vec!["true".into()],
            ..Default::default()
        })
        .collect();
    tasks.push(drover::tasks::TaskSpec {
        argv: vec!["false".into()],
        ..Default::default()
    });
    let ids = client.submit(&tasks).await.unwrap();
    client
        .wait_tasks(Some(&ids), Duration::from_millis(100))
        .await
        .unwrap();

    let dom = browse(&browser, &login_url(&file, "/ui"), &["--dump-dom"]);
    assert!(
        dom.contains("20 succeeded") && dom.contains("1 failed"),
        "{dom}"
    );
    let status = cluster.status();
    for j in &status.jobs {
        let r = row(&dom, &j.job.to_string())
            .unwrap_or_else(|| panic!("job {} not listed: {dom}", j.job));
        assert!(
            r.contains(&format!("<td class=\"state\">{}</td>", j.state)),
            "{r}"
        );
        // Its age, from the absolute time the row carries, written by
        // the page's script in the scheduler's words.
        let age = r
            .split("data-since=\"")
            .nth(1)
            .and_then(|a| a.split_once("\">"))
            .and_then(|(_, a)| a.split("</td>").next())
            .unwrap_or_else(|| panic!("no age in {r}"));
        let words = age.trim_end_matches(['s', 'm']);
        assert!(
            !words.is_empty() && words.chars().all(|c| c.is_ascii_alphanumeric()),
            "age {age:?} in {r}"
        );
    }
    assert!(row(&dom, &held).unwrap().contains(&reason), "{dom}");
    let drawn = count(&dom, "data-drawn").expect("the chart was drawn");
    assert!(drawn >= 2, "{drawn} samples drawn");
    // Updates after the first ask from the page's version (what changed
    // since, or nothing): several applied, the rows above still right.
    let updates = count(&dom, "data-updates").expect("a live update reached the page");
    assert!(updates >= 2, "{updates} updates");

    // The screenshot, kept as the test's artifact.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &login_url(&file, "/ui"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1000",
        ],
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    eprintln!("status page screenshot: {}", shot.display());

    // A worker's page shows its log's latest line.
    let running = status
        .jobs
        .iter()
        .find(|j| j.state == JobState::Running && !j.workers.is_empty())
        .unwrap();
    let worker = running.workers[0].name.clone();
    let latest = std::fs::read_to_string(&running.log).unwrap();
    let latest = latest
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .to_string();
    let page = browse(
        &browser,
        &login_url(&file, &format!("/ui/workers/{worker}")),
        &["--dump-dom"],
    );
    assert!(
        page.contains(&escaped(&latest)),
        "{latest:?} not on {worker}'s page: {page}"
    );

    // A job cancelled from outside: the page has it as Slurm has it.
    // By its array form (`14_0`): Slurm 22.05 refuses `scancel` of an
    // array task's own job id while the array has a task pending.
    let victim = running
        .job_id
        .expect("a running job has its id")
        .to_string();
    slurm_cmd("scancel", &[&running.job.to_string()]);
    let gone = |s: &drover::protocol::ClusterStatus| {
        s.jobs
            .iter()
            .filter(|j| j.job_id.map(|i| i.to_string()) == Some(victim.clone()))
            .all(|j| !j.state.is_active())
    };
    let start = std::time::Instant::now();
    while !gone(&cluster.status()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job {victim} still active after scancel: {:#?}",
            cluster.status().jobs
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dom = browse(&browser, &login_url(&file, "/ui"), &["--dump-dom"]);
    let status = cluster.status();
    for j in &status.jobs {
        let r = row(&dom, &j.job.to_string())
            .unwrap_or_else(|| panic!("job {} not listed: {dom}", j.job));
        if !j.state.is_active() || j.job.to_string() == held {
            assert!(
                r.contains(&format!("<td class=\"state\">{}</td>", j.state)),
                "{r}"
            );
        }
    }
    if let Some(v) = status
        .jobs
        .iter()
        .find(|j| j.job_id.map(|i| i.to_string()) == Some(victim.clone()))
    {
        assert!(!v.state.is_active(), "{v:?}");
    }
    cluster.close().await.unwrap();
}

/// The session cookie (`name=value`) of a login through `drover dashboard`.
async fn session_cookie(http: &reqwest::Client, file: &Path) -> String {
    let r = http.get(login_url(file, "/ui")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// Acting from the page: an action without the session's action token is
/// refused, one with it is done (a scale shown by `squeue`, a job
/// cancelled and replaced, a task cancelled) and journaled; the page
/// shows its cost panel and utilisation chart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_from_the_page_need_the_sessions_token() {
    let Some(slurm) = local_slurm("actions_from_the_page") else {
        return;
    };
    let Some(browser) = common::browser::chromium() else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let journal = logs.path().join("pool.journal");
    let spec = test_job("drover-act", 1, logs.path()).build().unwrap();
    let (cluster, file, http) = page_pool(spec, Some(journal.clone()), (1, 1), slurm).await;
    let base = cluster.scheduler().url();
    let cookie = session_cookie(&http, &file).await;
    let page = http
        .get(format!("{base}/ui"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page
        .split("name=\"drover-actions\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no action token on the page: {page}"))
        .to_string();
    let act = |body: serde_json::Value, token: Option<&str>| {
        let mut r = http
            .post(format!("{base}/ui/action"))
            .header("cookie", &cookie)
            .json(&body);
        if let Some(t) = token {
            r = r.header("x-drover-action-token", t);
        }
        r.send()
    };
    let scale = serde_json::json!({"action": "scale", "workers": 2});
    // Another site's request has the cookie at most, never the token.
    for wrong in [None, Some("guess"), Some(&token[..token.len() - 1])] {
        let r = act(scale.clone(), wrong).await.unwrap();
        assert_eq!(r.status(), 403, "{wrong:?}");
    }
    let name = cluster.status().job_name;
    assert_eq!(common::jobs_named(&name).len(), 1, "nothing was done");
    // Bad input is refused, naming what is wrong.
    for (bad, field) in [
        (
            serde_json::json!({"action": "scale", "workers": 100_001}),
            "workers",
        ),
        (
            serde_json::json!({"action": "scale", "group": "a/b", "workers": 1}),
            "group",
        ),
    ] {
        let r = act(bad, Some(&token)).await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(field));
    }
    let r = act(scale.clone(), Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    common::until("squeue to show 2 jobs", Duration::from_secs(30), || {
        common::jobs_named(&name).len() == 2
    })
    .await;

    // A job cancelled from the page is cancelled, and replaced.
    let victim = cluster.status().jobs[0].job.to_string();
    let body = serde_json::json!({"action": "cancel_job", "job": victim});
    let r = act(body, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    common::until("the job cancelled", Duration::from_secs(30), || {
        !common::jobs_named(&name).contains(&victim)
    })
    .await;
    let unknown = serde_json::json!({"action": "cancel_job", "job": "999999"});
    assert_eq!(act(unknown, Some(&token)).await.unwrap().status(), 404);

    // A task cancelled from the page.
    let client = cluster.client();
    let ids = client
        .submit(&[drover::tasks::TaskSpec {
            argv: vec!["sleep".into(), "300".into()],
            ..Default::default()
        }])
        .await
        .unwrap();
    let body = serde_json::json!({"action": "cancel_task", "task": ids[0].0});
    let r = act(body, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let info = client.task(ids[0]).await.unwrap();
    assert_eq!(info.state, drover::tasks::TaskState::Cancelled, "{info:?}");

    // Each action done is in the journal.
    let recorded = drover::journal::Journal::read(&journal)
        .unwrap()
        .into_iter()
        .filter(|op| matches!(op, drover::journal::Op::PageAction { .. }))
        .count();
    assert_eq!(recorded, 3);

    // The page in a browser: its actions, cost panel and utilisation chart.
    common::until(
        "the pool back at 2 running",
        Duration::from_secs(60),
        || cluster.status().registered >= 2,
    )
    .await;
    let dom = browse(&browser, &login_url(&file, "/ui"), &["--dump-dom"]);
    assert!(dom.contains("id=\"scale-form\""), "{dom}");
    assert!(dom.contains("class=\"cancel-job\""), "{dom}");
    assert!(
        dom.contains("id=\"cost\"") && dom.contains("data-cost=\"total\""),
        "{dom}"
    );
    let drawn = dom
        .split("id=\"utilisation\"")
        .nth(1)
        .and_then(|r| r.split("data-drawn=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(
        drawn.is_some_and(|n| n >= 1),
        "utilisation not drawn: {dom}"
    );
    cluster.close().await.unwrap();
}
