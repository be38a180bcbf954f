//! Debian's headless Chromium (`integration/browser/install`), for the
//! status page's test and benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::run_ok;

/// Chromium on `PATH`, or `None` (with a note) when it is not installed.
/// Under `CI=true` a missing browser fails the run instead of skipping.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chromium"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file());
    if found.is_none() {
        let why = "no chromium on PATH (install it with integration/browser/install)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why}; under CI=true nothing is skipped"
        );
        eprintln!("SKIPPED {why}");
    }
    found
}

/// Chromium, headless with a profile of its own, on `url` with `args`
/// (`--dump-dom`, `--screenshot`, `--virtual-time-budget`), within 90 s:
/// its stdout. The scheduler's certificate is its own, so it is not
/// checked here (`drover dashboard` prints its fingerprint for people).
pub fn headless(browser: &Path, url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = run_ok(
        Command::new("timeout")
            .arg("90")
            .arg(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--ignore-certificate-errors",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(url),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A login URL from `drover dashboard` (its last line), sending the
/// browser on to `next`.
pub fn login_url(scheduler_file: &Path, next: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["dashboard", "--scheduler-file"])
        .arg(scheduler_file)
        .env("DROVER_USER_CONFIG", "/dev/null")
        .output()
        .expect("the drover binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let url = text.lines().last().expect("a URL").to_string();
    assert!(
        url.starts_with("https://") && url.contains("/ui/login?code="),
        "{text}"
    );
    format!("{url}&next={next}")
}
