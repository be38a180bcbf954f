//! The `drover` command line without Slurm: job scripts, config files, and
//! bad input refused with exit status 2.

use std::process::{Command, Output};

fn drover(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .current_dir(dir)
        .env("DROVER_USER_CONFIG", "/dev/null")
        .env_remove("DROVER_CONFIG")
        .output()
        .expect("the drover binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn job_script_prints_the_script_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = drover(
        &[
            "job-script",
            "--cores",
            "4",
            "--memory",
            "8GB",
            "--walltime",
            "1h30m",
            "--queue",
            "small",
            "--account",
            "proj",
            "--interface",
            "ib0",
            "--job-extra-directives=--qos=debug",
            "--job-directives-skip=-e",
            "--job-script-prologue",
            "source venv/bin/activate",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=7630M",
        "#SBATCH --time=01:30:00",
        "#SBATCH --partition=small",
        "#SBATCH --account=proj",
        "#SBATCH --qos=debug",
        "source venv/bin/activate",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(
        !text.contains("--error="),
        "skipped -e is still there:\n{text}"
    );
    let logs = dir.path().join("drover-logs");
    assert!(
        text.contains(&format!("--output={}/%x-%j.out", logs.display())),
        "{text}"
    );
    assert!(!logs.exists(), "printing a script must not create anything");
}

#[test]
fn bad_flags_exit_2_naming_the_field_and_forms() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--walltime", "25:99:00"],
            &["--walltime", "minutes must be below 60", "HH:MM:SS"],
        ),
        (
            &["--memory", "lots"],
            &["--memory", "does not start with a number", "4 GiB"],
        ),
        (&["--job-name", "a\nb"], &["job-name", "control character"]),
        (
            &["--cores", "2", "--processes", "3"],
            &["processes = 3", "cores = 2"],
        ),
        (
            &["--memory-directive", "both"],
            &["--memory-directive", "mem-per-cpu"],
        ),
        (&["--queue", "a b"], &["queue", "whitespace"]),
    ];
    for (flags, fragments) in cases {
        let mut args = vec!["job-script"];
        args.extend_from_slice(flags);
        let out = drover(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{flags:?} printed a script");
        let err = stderr(&out);
        for f in *fragments {
            assert!(err.contains(f), "{flags:?}: {f:?} not in:\n{err}");
        }
    }
}

#[test]
fn project_config_is_read_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drover.toml"),
        "[job]\ncores = 2\nmemory = \"3GiB\"\nqueue = \"small\"\n",
    )
    .unwrap();
    let out = drover(&["job-script", "--cores", "6"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("#SBATCH --cpus-per-task=6"), "{text}");
    assert!(text.contains("#SBATCH --mem=3G"), "{text}");
    assert!(text.contains("#SBATCH --partition=small"), "{text}");

    std::fs::write(dir.path().join("bad.toml"), "[job]\nwalltime = \"1-25\"\n").unwrap();
    let out = drover(&["--config", "bad.toml", "job-script"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml: line 2, field `walltime`: hours must be below 24"),
        "{err}"
    );
}

#[test]
fn template_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("site.tera");
    std::fs::write(
        &template,
        "{{ shebang }}\n#SBATCH --qos=x\n#SBATCH -c {{ ncpus }}\n",
    )
    .unwrap();
    let out = drover(
        &["job-script", "--template", template.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "a broken template is bad input");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("template {}, line 3:", template.display())),
        "{err}"
    );
    assert!(err.contains("ncpus"), "{err}");
}

#[test]
fn graph_dot_draws_the_seed_graph() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-graph.toml");
    let out = drover(&["graph", "dot", seed.to_str().unwrap()], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph drover {"), "{dot}");
    for edge in [
        "\"inc-3\" -> \"add-3\";",
        "\"double-3\" -> \"add-3\";",
        "\"add-5\" -> \"total\";",
    ] {
        assert!(dot.contains(edge), "missing {edge} in:\n{dot}");
    }
    std::fs::write(
        dir.path().join("bad.toml"),
        "[tasks.a]\ncommand = \"echo {{missing}}\"\n",
    )
    .unwrap();
    let out = drover(&["graph", "dot", "bad.toml"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "a broken graph file is bad input"
    );
    assert!(
        stderr(&out).contains("refers to `missing`, which the graph does not define"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_task_array_range_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for range in ["9-1", "a-b", "1,,2", ""] {
        let out = drover(
            &[
                "submit",
                "--scheduler-file",
                "none.json",
                "--array",
                range,
                "--",
                "true",
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{range}: {}", stderr(&out));
        assert!(stderr(&out).contains("--array"), "{}", stderr(&out));
        assert!(stderr(&out).contains("0-999"), "{}", stderr(&out));
    }
}

/// Issue 29 B: a line of an `--each-line` file is data. Into a shell
/// script it goes as a variable; into another language's code (or where
/// drover cannot tell) it is refused before anything is sent.
#[test]
fn an_each_line_line_never_becomes_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lines"), "x'); import os; os.system('id\n").unwrap();
    let submit = |argv: &[&str]| {
        let mut args = vec![
            "submit",
            "--scheduler-file",
            "none.json",
            "--each-line",
            "lines",
            "--",
        ];
        args.extend_from_slice(argv);
        drover(&args, dir.path())
    };
    for code in [
        &["python3", "-c", "print('{{line}}')"][..],
        &["perl", "-e", "print '{{line}}'"][..],
        &["env", "-S", "sh -c 'echo {{line}}'"][..],
    ] {
        let out = submit(code);
        assert_eq!(out.status.code(), Some(2), "{code:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("DROVER_TASK_LINE"),
            "{}",
            stderr(&out)
        );
    }
    // As data, and as a shell variable: past the check (to the missing
    // scheduler file).
    for fine in [
        &["echo", "{{line}}"][..],
        &["sh", "-c", "echo {{line}}"][..],
    ] {
        let out = submit(fine);
        assert!(
            stderr(&out).contains("none.json"),
            "{fine:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_bad_adaptive_range_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for range in ["5:2", "8", "a:b", "0:0"] {
        let out = drover(&["run", "--adapt", range, "--", "true"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{range}: {}", stderr(&out));
        assert!(stderr(&out).contains("MIN:MAX"), "{}", stderr(&out));
    }
}

#[test]
fn dask_pool_flags_that_cannot_work_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = drover(
        &[
            "run",
            "--dask-scheduler-file",
            "x.json",
            "--interface",
            "lo",
            "--",
            "true",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--dask-scheduler-file needs --kind dask"));
    let out = drover(&["job-script", "--kind", "snake"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("native, dask"), "{}", stderr(&out));
}

/// Runs drover in `dir` with extra environment.
fn drover_env(args: &[&str], dir: &std::path::Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .current_dir(dir)
        .env("DROVER_USER_CONFIG", "/dev/null")
        .env_remove("DROVER_CONFIG")
        .env_remove("DROVER_SCHEDULER_FILE")
        .envs(env.iter().copied())
        .output()
        .expect("the drover binary runs")
}

/// Arguments, environment, and a fragment the error must contain.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_input_exits_2_from_every_command_with_the_thing_at_fault_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbled = dir.path().join("garbled.json");
    std::fs::write(&garbled, "{\"address\": 3").unwrap();
    // Private, as scheduler files must be: what is wrong is its content.
    std::fs::set_permissions(
        &garbled,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.path().join("pool.toml"), "[pool]\nworkers = -1\n").unwrap();
    std::fs::write(dir.path().join("keys.toml"), "[pool]\nspeed = 3\n").unwrap();
    std::fs::write(
        dir.path().join("cycle.toml"),
        "[tasks.a]\ncommand = \"echo {{b}}\"\n[tasks.b]\ncommand = \"echo {{a}}\"\n",
    )
    .unwrap();
    let cases: &[Case] = &[
        (
            &["status", "--scheduler-file", "missing.json"],
            &[],
            "missing.json",
        ),
        (
            &["status", "--scheduler-file", "garbled.json"],
            &[],
            "is not valid",
        ),
        (
            &["scale", "3", "--scheduler-file", "garbled.json"],
            &[],
            "garbled.json",
        ),
        (
            &["logs", "w3", "--scheduler-file", "missing.json"],
            &[],
            "missing.json",
        ),
        (
            &["wait", "--scheduler-file", "missing.json"],
            &[],
            "missing.json",
        ),
        (
            &["retire", "x9", "--scheduler-file", "missing.json"],
            &[],
            "such as w3",
        ),
        (
            &["task", "show", "tx", "--scheduler-file", "missing.json"],
            &[],
            "such as t12",
        ),
        (&["worker"], &[], "--scheduler-file"),
        (
            &["worker", "--scheduler-file", "missing.json"],
            &[],
            "missing.json",
        ),
        (&["submit", "--", "true"], &[], "--scheduler-file"),
        (
            &[
                "submit",
                "--scheduler-file",
                "missing.json",
                "--each-line",
                "none.txt",
                "--",
                "true",
            ],
            &[],
            "none.txt",
        ),
        (
            &[
                "graph",
                "run",
                "cycle.toml",
                "--scheduler-file",
                "missing.json",
            ],
            &[],
            "cycle",
        ),
        (&["run", "--interface", "nope0", "--", "true"], &[], "nope0"),
        (
            &[
                "run",
                "--interface",
                "lo",
                "--max-pending-jobs",
                "0",
                "--",
                "true",
            ],
            &[],
            "max-pending-jobs",
        ),
        (
            &["run", "--interface", "lo", "--", "true"],
            &[("DROVER_POLL_INTERVAL", "soon")],
            "DROVER_POLL_INTERVAL",
        ),
        (
            &["run", "--interface", "lo", "--", "true"],
            &[("DROVER_MISSED_HEARTBEATS", "1")],
            "missed-heartbeats",
        ),
        (
            &[
                "--config",
                "pool.toml",
                "run",
                "--interface",
                "lo",
                "--",
                "true",
            ],
            &[],
            "workers",
        ),
        (&["--config", "keys.toml", "job-script"], &[], "speed"),
        (
            &[
                "scheduler",
                "--interface",
                "nope0",
                "--scheduler-file",
                "s.json",
            ],
            &[],
            "nope0",
        ),
        (&["cancel", "--cluster", "../x"], &[], "cluster id"),
    ];
    for (args, env, fragment) in cases {
        let out = drover_env(args, dir.path(), env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(
            err.contains(fragment),
            "{args:?}: {fragment:?} not in:\n{err}"
        );
    }
}

#[test]
fn bad_groups_and_resources_are_usage_errors_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let up = |config: &str, extra: &[&str]| {
        std::fs::write(dir.path().join("groups.toml"), config).unwrap();
        let mut args = vec!["--config", "groups.toml", "cluster", "up"];
        args.extend_from_slice(extra);
        drover(&args, dir.path())
    };
    let cases: [(&str, &[&str], &str); 5] = [
        ("[group.big]\nmemroy = \"1GiB\"\n", &[], "memroy"),
        (
            "[group.big]\nworkers = 1\n",
            &["--workers", "2"],
            "size each with workers = N",
        ),
        ("[group.\"no spaces\"]\n", &[], "not a group name"),
        (
            "[group.big]\nworkers = 1\nadapt = \"0:2\"\n",
            &[],
            "both workers and adapt",
        ),
        (
            "[group.a]\n[group.b]\nnodes = 2\nkind = \"dask\"\n",
            &[],
            "nodes = 2 with kind = \"dask\"",
        ),
    ];
    for (config, extra, words) in cases {
        let out = up(config, extra);
        assert_eq!(out.status.code(), Some(2), "{config}: {}", stderr(&out));
        assert!(stderr(&out).contains(words), "{config}: {}", stderr(&out));
    }
    let out = drover(
        &["submit", "--resource", "licence", "--", "true"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("NAME=AMOUNT"), "{}", stderr(&out));
}

#[test]
fn a_multi_node_job_runs_an_agent_per_node_with_srun() {
    let dir = tempfile::tempdir().unwrap();
    let out = drover(&["job-script", "--nodes", "3", "--cores", "8"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    assert!(script.contains("#SBATCH --nodes=3"), "{script}");
    assert!(script.contains("#SBATCH --ntasks-per-node=1"), "{script}");
    assert!(
        script.contains("srun --nodes=3 --ntasks-per-node=1 --kill-on-bad-exit=0 "),
        "{script}"
    );
}

#[test]
fn bad_ways_to_reach_slurm_are_usage_errors_before_anything_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("loose-token");
    std::fs::write(&loose, "a.b.c").unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let no_token: &[(&str, &str)] = &[("SLURM_JWT", "")];
    let cases: &[Case] = &[
        (
            &["job-script", "--check", "--slurm-api", "soap"],
            &[],
            "`rest` (slurmrestd)",
        ),
        (
            &[
                "cancel",
                "--cluster",
                "ab12",
                "--slurm-api",
                "rest",
                "--slurmrestd",
                "http://10.0.0.5:6820",
            ],
            &[],
            "unencrypted",
        ),
        (
            &["job-script", "--check", "--slurm-api", "rest"],
            &[("SLURMRESTD_URL", "")],
            "SLURMRESTD_URL",
        ),
        (
            &[
                "job-script",
                "--check",
                "--slurm-api",
                "rest",
                "--slurmrestd",
                "http://127.0.0.1:9",
            ],
            no_token,
            "SLURM_JWT: it is empty",
        ),
        (
            &[
                "job-script",
                "--check",
                "--slurm-api",
                "rest",
                "--slurmrestd",
                "http://127.0.0.1:9",
                "--slurm-jwt-file",
            ],
            &[],
            "--slurm-jwt-file",
        ),
        (
            &[
                "run",
                "--slurm-api",
                "rest",
                "--slurmrestd",
                "http://127.0.0.1:9",
                "--slurm-jwt-file",
                "loose-token",
                "--",
                "true",
            ],
            &[],
            "may be read by other users",
        ),
        (
            &["doctor", "--no-probe"],
            &[("DROVER_SLURM_API", "grpc")],
            "DROVER_SLURM_API",
        ),
    ];
    for (args, env, expected) in cases {
        let out = drover_env(args, dir.path(), env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in: {err}"
        );
    }
}
