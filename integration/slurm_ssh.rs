//! A driver outside the cluster (`--ssh`), on the real local Slurm: from
//! `slurm/local-cluster laptop`, a namespace that reaches only the login
//! node's ssh port and has no Slurm commands or config, through the login
//! node's real OpenSSH server.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{local_slurm, slurm_cmd, unique};

const DROVER: &str = env!("CARGO_BIN_EXE_drover");
const SSHD_LOG: &str = "/var/lib/drover-slurm/log/sshd-login.log";

/// `drover ARGS` as a laptop runs it.
fn laptop(args: &[&str]) -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/slurm/local-cluster");
    let mut c = Command::new(script);
    c.args(["laptop", "--", DROVER])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DROVER_USER_CONFIG", "/dev/null")
        .env_remove("DROVER_REMOTE_GRACE");
    c
}

/// The pool's flags: two one-core workers on the nodes' ib0, the
/// scheduler on the login node's, jobs named `job_name`.
fn pool(job_name: &str, logs: &str) -> Vec<String> {
    [
        "--workers",
        "2",
        "--cores",
        "1",
        "--memory",
        "500M",
        "--walltime",
        "10m",
        "--interface",
        "ib0",
        "--scheduler-interface",
        "ib0",
        "--log-directory",
        logs,
        "--job-name",
        job_name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Jobs whose names start with `prefix` (a pool's are `PREFIX-<cluster id>`).
fn jobs_of(prefix: &str) -> Vec<String> {
    slurm_cmd("squeue", &["-h", "-o", "%i %j"])
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(str::to_string)
        .collect()
}

/// ssh logins the login node accepted from the laptop so far.
fn laptop_logins() -> usize {
    std::fs::read_to_string(SSHD_LOG)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Accepted publickey") && l.contains("from 10.78.0.2"))
        .count()
}

/// `drover cluster up --ssh login` with `extra` flags and `pool`'s.
fn cluster_up(name: &str, logs: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["cluster", "up", "--ssh", "login", "--remote-drover", DROVER]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    args.extend(pool(name, &logs.display().to_string()));
    args
}

/// `drover cluster up --ssh` (or `attach`) from the laptop, in a process
/// group of its own (so the test can kill the laptop's side whole); the
/// lines it printed up to `ready:`.
fn foreground(args: &[String]) -> (Child, Vec<String>) {
    let mut child = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("DROVER_REMOTE_GRACE", "90s")
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("the laptop runs drover");
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in out.by_ref() {
        let line = line.unwrap();
        let ready = line.starts_with("ready:");
        lines.push(line);
        if ready {
            // The rest is read too, so the process never writes to a
            // closed pipe.
            std::thread::spawn(move || out.for_each(drop));
            return (child, lines);
        }
    }
    panic!(
        "{args:?} ended before it was ready: {lines:?} ({:?})",
        child.wait()
    );
}

fn export(lines: &[String], name: &str) -> String {
    let prefix = format!("export {name}=");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
        .to_string()
}

fn kill_group(child: &Child, signal: nix::sys::signal::Signal) {
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, signal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_from_the_laptop_computes_the_graph_through_one_ssh_connection() {
    if local_slurm("run_from_the_laptop_computes_the_graph_through_one_ssh_connection").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-run");
    let logins = laptop_logins();
    let mut args = vec!["run".to_string(), "--ssh".into(), "login".into()];
    args.extend(pool(&name, &logs.path().display().to_string()));
    args.extend(
        [
            "--remote-drover",
            DROVER,
            "--",
            DROVER,
            "graph",
            "run",
            "examples/seed-graph.toml",
        ]
        .map(String::from),
    );
    let out = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let total = said
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("total"))
        .unwrap_or_else(|| panic!("no total in: {said}"));
    assert!(total.contains(" 50 "), "{total}");
    // Every command, the hold and the forwarded port rode one connection.
    assert_eq!(laptop_logins() - logins, 1, "{said}");
    assert!(jobs_of(&name).is_empty(), "jobs left: {:?}", jobs_of(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hosts_keys_and_drovers_each_get_their_own_error_and_submit_nothing() {
    if local_slurm("bad_hosts_keys_and_drovers_each_get_their_own_error_and_submit_nothing")
        .is_none()
    {
        return;
    }
    let logs = common::log_dir();
    let name = unique("ssh-bad");
    let fake = logs.path().join("old-drover");
    std::fs::write(&fake, "#!/bin/sh\necho drover 0.0.1\n").unwrap();
    let exec = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&fake, exec).unwrap();
    let fake = fake.display().to_string();
    let cases: [(&str, Option<&str>, &str); 4] = [
        (
            "nosuchhost",
            None,
            "cannot reach nosuchhost over ssh: ssh: Could not resolve hostname",
        ),
        ("nobody@login", None, "refused the ssh login"),
        (
            "login",
            Some("/nowhere/drover"),
            "no drover on login: `/nowhere/drover` cannot be run there",
        ),
        (
            "login",
            Some(&fake),
            "drover on login is drover 0.0.1, this one is drover",
        ),
    ];
    for (host, remote, words) in cases {
        let mut args = vec!["run".to_string(), "--ssh".into(), host.into()];
        args.extend(pool(&name, &logs.path().display().to_string()));
        args.extend([
            "--remote-drover".to_string(),
            remote.unwrap_or(DROVER).to_string(),
        ]);
        args.extend(["--", "true"].map(String::from));
        let out = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{host} {remote:?}: {said}");
        assert!(
            said.contains(words),
            "{host} {remote:?}: {words:?} in: {said}"
        );
    }
    assert!(
        jobs_of(&name).is_empty(),
        "jobs submitted: {:?}",
        jobs_of(&name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_outlives_its_laptop_and_is_attached_again_and_closed() {
    if local_slurm("a_pool_outlives_its_laptop_and_is_attached_again_and_closed").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    // Logs where the nodes and the login node write them but the laptop
    // cannot look (slurm/local-cluster hides its state directory there).
    let logs = tempfile::Builder::new()
        .prefix("ssh-logs")
        .tempdir_in("/var/lib/drover-slurm")
        .unwrap();
    let name = unique("ssh-attach");
    let args = cluster_up(&name, logs.path(), &["--name", &name]);
    let (first, lines) = foreground(&args);
    let cluster = export(&lines, "DROVER_CLUSTER_ID");
    // The laptop's driver and its ssh connection die at once.
    kill_group(&first, nix::sys::signal::Signal::SIGKILL);
    let _ = common::process::KillOnDrop(first);
    let attach = [
        "cluster",
        "attach",
        "--ssh",
        "login",
        "--name",
        &name,
        "--remote-drover",
        DROVER,
    ]
    .map(String::from);
    let (second, lines) = foreground(&attach);
    let second = common::process::KillOnDrop(second);
    assert_eq!(export(&lines, "DROVER_CLUSTER_ID"), cluster, "{lines:?}");
    let file = export(&lines, "DROVER_SCHEDULER_FILE");
    let status = laptop(&["status", "--scheduler-file", &file])
        .output()
        .unwrap();
    let said = text(&status);
    assert!(said.contains("2 of 2 workers registered"), "{said}");
    assert_eq!(jobs_of(&name).len(), 2, "{said}");
    // The laptop reads a worker's log through the scheduler.
    let out = laptop(&["logs", "w1", "--scheduler-file", &file])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let (stdout, _) = said
        .split_once("==> w1 stdout (through the scheduler) <==\n")
        .and_then(|(_, rest)| rest.split_once("==> w1 stderr"))
        .unwrap_or_else(|| panic!("both logs in: {said}"));
    assert!(!stdout.trim().is_empty(), "{said}");
    // Ctrl-C on the attached side closes the pool: nothing is left.
    let mut second = second;
    kill_group(&second.0, nix::sys::signal::Signal::SIGINT);
    let status = second.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(jobs_of(&name).is_empty(), "jobs left: {:?}", jobs_of(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_laptop_a_pool_closes_after_the_grace() {
    if local_slurm("without_its_laptop_a_pool_closes_after_the_grace").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-grace");
    let args = cluster_up(&name, logs.path(), &[]);
    let mut command = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>());
    command.env("DROVER_REMOTE_GRACE", "5s");
    let mut child = command
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = out
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("ready:"));
    assert!(ready, "the pool came up");
    std::thread::spawn(move || out.for_each(drop));
    assert_eq!(jobs_of(&name).len(), 2);
    kill_group(&child, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    // 5 s of grace, then the pool closes: its workers retire, jobs end.
    common::until("the pool's jobs gone", Duration::from_secs(60), || {
        jobs_of(&name).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_dask_program_runs_unchanged_on_the_laptop() {
    if local_slurm("the_seeds_dask_program_runs_unchanged_on_the_laptop").is_none() {
        return;
    }
    let Some(python) =
        common::python::dask_python("the_seeds_dask_program_runs_unchanged_on_the_laptop")
    else {
        return;
    };
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-dask");
    let python = python.display().to_string();
    let mut args = vec!["run".to_string(), "--ssh".into(), "login".into()];
    args.extend(pool(&name, &logs.path().display().to_string()));
    args.extend(
        [
            "--kind",
            "dask",
            "--python",
            &python,
            "--remote-drover",
            DROVER,
            "--",
        ]
        .map(String::from),
    );
    args.extend([python.as_str(), "-u", "slurm/examples/dask/delayed_sum.py"].map(String::from));
    let out = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("total = 50"), "{said}");
    // Computed by the pool's Dask workers on the nodes, over Dask's TLS
    // through the forwarded port (not a local cluster Client() made).
    let prefix = format!("tls://{}", common::subnet_prefix());
    let workers = said
        .lines()
        .find(|l| l.starts_with("workers: "))
        .unwrap_or_default();
    assert!(workers.contains(&prefix), "{said}");
    assert!(jobs_of(&name).is_empty(), "jobs left: {:?}", jobs_of(&name));
}

/// The ssh master of the laptop process `root` (the process whose command
/// line starts `ssh -M`, among `root`'s descendants).
fn master_of(root: u32) -> Option<i32> {
    let parent = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let descends = |mut pid: i32| {
        while pid > 1 {
            if pid == root as i32 {
                return true;
            }
            pid = match parent(pid) {
                Some(p) => p,
                None => return false,
            };
        }
        false
    };
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (cmdline.starts_with(b"ssh\0-M\0") && descends(pid)).then_some(pid)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ssh_connection_is_made_again_on_the_same_port() {
    if local_slurm("a_lost_ssh_connection_is_made_again_on_the_same_port").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-lost");
    let args = cluster_up(&name, logs.path(), &[]);
    let (child, lines) = foreground(&args);
    let mut child = common::process::KillOnDrop(child);
    let file = export(&lines, "DROVER_SCHEDULER_FILE");
    // The connection dies under the pool's near end (as on a network cut).
    let master = master_of(child.0.id()).expect("the laptop's ssh master");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    common::until("a new ssh master", Duration::from_secs(30), || {
        master_of(child.0.id()).is_some_and(|m| m != master)
    })
    .await;
    // The driver's scheduler file (its forwarded port) works again.
    common::until(
        "the pool answering through the same port",
        Duration::from_secs(30),
        || {
            let out = laptop(&["status", "--scheduler-file", &file])
                .output()
                .unwrap();
            out.status.success() && text(&out).contains("2 of 2 workers registered")
        },
    )
    .await;
    kill_group(&child.0, nix::sys::signal::Signal::SIGINT);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(jobs_of(&name).is_empty(), "jobs left: {:?}", jobs_of(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_ssh_in_the_config_sends_pools_to_the_login_node() {
    if local_slurm("site_ssh_in_the_config_sends_pools_to_the_login_node").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-site");
    let config = logs.path().join("drover.toml");
    std::fs::write(
        &config,
        format!("[site]\nssh = \"login\"\nremote-drover = \"{DROVER}\"\n\n[pool]\nworkers = 1\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut args = vec!["--config".to_string(), config, "run".into()];
    args.extend(pool(&name, &logs.path().display().to_string()));
    args.retain(|a| a != "--workers" && a != "2");
    args.extend(["--", "sh", "-c", "echo at=$DROVER_SCHEDULER_ADDRESS"].map(String::from));
    let out = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // The driver reached its pool through the port forwarded here.
    assert!(said.contains("at=https://127.0.0.1:"), "{said}");
    assert!(jobs_of(&name).is_empty(), "jobs left: {:?}", jobs_of(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_job_pool_is_driven_from_the_laptop() {
    if local_slurm("a_scheduler_job_pool_is_driven_from_the_laptop").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-sjob");
    let journal = logs.path().join("pool.journal").display().to_string();
    let args = cluster_up(
        &name,
        logs.path(),
        &["--scheduler-job", "--journal", &journal],
    );
    let (child, lines) = foreground(&args);
    let mut child = common::process::KillOnDrop(child);
    // The pool itself is a Slurm job: its scheduler, the workers' two.
    assert_eq!(jobs_of(&name).len(), 3, "{:?}", jobs_of(&name));
    let file = export(&lines, "DROVER_SCHEDULER_FILE");
    let out = laptop(&["status", "--scheduler-file", &file])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("2 of 2 workers registered"),
        "{}",
        text(&out)
    );
    kill_group(&child.0, nix::sys::signal::Signal::SIGINT);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    common::until("the pool's jobs gone", Duration::from_secs(60), || {
        jobs_of(&name).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_gone_while_its_pool_comes_up_leaves_nothing() {
    if local_slurm("a_laptop_gone_while_its_pool_comes_up_leaves_nothing").is_none() {
        return;
    }
    let _one = common::exclusive().await;
    let logs = common::log_dir();
    let name = unique("ssh-early");
    // Workers that take a while to register: the pool is still coming up
    // (its jobs queued or starting) when the laptop goes.
    let args = cluster_up(&name, logs.path(), &["--job-script-prologue", "sleep 8"]);
    let mut command = laptop(&args.iter().map(String::as_str).collect::<Vec<_>>());
    command.env("DROVER_REMOTE_GRACE", "5s");
    let child = command
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut child = common::process::KillOnDrop(child);
    common::until("the pool's jobs submitted", Duration::from_secs(60), || {
        !jobs_of(&name).is_empty()
    })
    .await;
    kill_group(&child.0, nix::sys::signal::Signal::SIGKILL);
    let _ = child.0.wait();
    // The hold was taken before the pool started: the grace, then the close.
    common::until("the pool's jobs gone", Duration::from_secs(90), || {
        jobs_of(&name).is_empty()
    })
    .await;
}
