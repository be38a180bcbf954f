//! Parsing, layering and validation of job settings, including the table of
//! bad inputs and the error each must give.

use std::path::Path;

use super::*;

fn from_toml(body: &str) -> Result<JobSpec, SpecError> {
    let text = format!("[job]\n{body}\n");
    ConfigFile::parse(&text, Path::new("test.toml"))?
        .job
        .build()
}

#[test]
#[allow(clippy::too_many_lines)] // one table of cases, each a line
fn bad_inputs_are_refused_naming_the_field_and_the_accepted_forms() {
    // (config lines, fragments the error must contain)
    let cases: &[(&str, &[&str])] = &[
        (
            r#"memory = "4XB""#,
            &[
                "line 2, field `memory`",
                "`XB` is not a unit of memory",
                "accepted:",
            ],
        ),
        (r#"memory = "GB""#, &["does not start with a number"]),
        (r#"memory = "0""#, &["more than zero"]),
        (r#"memory = """#, &["it is empty"]),
        (r#"memory = "1.2.3G""#, &["not a number"]),
        (r#"memory = "99999999999999999999""#, &["too large"]),
        (r#"memory = "-4GB""#, &["does not start with a number"]),
        (
            r#"walltime = "25:99:00""#,
            &["minutes must be below 60, got 99", "HH:MM:SS"],
        ),
        (r#"walltime = "10:61""#, &["seconds must be below 60"]),
        (r#"walltime = "1-25""#, &["hours must be below 24"]),
        (r#"walltime = "1-10:60""#, &["minutes must be below 60"]),
        (r#"walltime = "1:2:3:4""#, &["too many `:`"]),
        (r#"walltime = "0""#, &["longer than zero"]),
        (r#"walltime = "soon""#, &["not a duration", "1h30m"]),
        (r#"walltime = "::""#, &["is not a number"]),
        (r#"walltime = "1--2""#, &["is not a number"]),
        ("cores = 0", &["invalid value `0` for cores", "at least 1"]),
        ("cores = -2", &["invalid value: integer `-2`"]),
        ("processes = 0", &["for processes", "at least 1"]),
        (
            "cores = 2\nprocesses = 4",
            &["processes = 4 needs at least as many cores, but cores = 2"],
        ),
        ("job-cpu = 0", &["for job-cpu"]),
        (r#"queue = "bad queue""#, &["for queue", "whitespace"]),
        (
            r##"queue = "batch\n#SBATCH --exclusive""##,
            &["for queue", "control character '\\n'"],
        ),
        (r#"queue = "--all""#, &["for queue", "starts with `-`"]),
        (r#"queue = """#, &["for queue", "it is empty"]),
        (
            r#"account = "a\u0000b""#,
            &["for account", "control character"],
        ),
        (
            r#"job-name = "worker\nhack""#,
            &["for job-name", "control character"],
        ),
        (r#"job-name = "two words""#, &["for job-name", "whitespace"]),
        (
            r#"interface = "ib0/1""#,
            &["for interface", "interface name"],
        ),
        (
            r#"interface = "a-very-long-interface-name""#,
            &["for interface"],
        ),
        (
            r#"log-directory = "/tmp/my logs""#,
            &["for log-directory", "whitespace"],
        ),
        (
            r#"local-directory = "/scratch\n""#,
            &["for local-directory", "control character"],
        ),
        (
            r#"job-extra-directives = ["qos=debug"]"#,
            &["for job-extra-directives", "starting with `-`"],
        ),
        (
            r##"job-extra-directives = ["--qos=debug\n#SBATCH -p x"]"##,
            &["for job-extra-directives", "control character"],
        ),
        (
            r#"job-extra-directives = ["--=x"]"#,
            &["for job-extra-directives", "malformed"],
        ),
        (
            r#"job-directives-skip = ["time"]"#,
            &["for job-directives-skip", "not an sbatch option name"],
        ),
        (
            r#"job-directives-skip = ["-tt"]"#,
            &["for job-directives-skip"],
        ),
        (
            r#"job-script-prologue = ["echo \u0000"]"#,
            &["for job-script-prologue", "control character"],
        ),
        (r#"gres = "gpu:"#, &["line 2"]),
        (r#"gres = "gpu::2""#, &["for gres", "gpu:a100:1"]),
        (r#"gpus = "a100""#, &["for gpus", "[TYPE:]COUNT"]),
        (r#"gpus = "two""#, &["for gpus"]),
        (
            r#"shebang = "/bin/bash""#,
            &["for shebang", "does not start with `#!`"],
        ),
        (
            r#"memory-directive = "mem-per-node""#,
            &["unknown variant `mem-per-node`", "mem-per-cpu"],
        ),
        (
            r#"death-timeout = "forever""#,
            &["not a duration", "seconds"],
        ),
        (
            r#"worker-extra-args = ["--x\ny"]"#,
            &["for worker-extra-args"],
        ),
        (r#"memroy = "4GB""#, &["unknown field `memroy`", "memory"]),
        (r#"cores = "four""#, &["invalid type"]),
    ];
    assert!(cases.len() >= 30);
    for (body, fragments) in cases {
        let err = match from_toml(body) {
            Ok(spec) => panic!("accepted bad input {body:?}: {spec:?}"),
            Err(e) => e.to_string(),
        };
        for f in *fragments {
            assert!(err.contains(f), "error for {body:?} lacks {f:?}:\n{err}");
        }
    }
}

#[test]
fn defaults_make_a_usable_job() {
    let spec = JobOptions::new().build().unwrap();
    assert_eq!(spec.cores, 1);
    assert_eq!(spec.memory, Memory::from_mib(1024));
    assert_eq!(spec.walltime.to_string(), "00:30:00");
    assert_eq!(spec.job_name, "drover-worker");
    assert!(spec.log_directory.is_absolute());
}

#[test]
fn layers_apply_in_order_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user.toml");
    let project = dir.path().join("project.toml");
    std::fs::write(
        &user,
        "[job]\ncores = 2\nmemory = \"2GB\"\nqueue = \"batch\"\n",
    )
    .unwrap();
    std::fs::write(&project, "[job]\ncores = 8\naccount = \"proj\"\n").unwrap();
    let sources = ConfigSources {
        user: Some(user),
        project: Some(project),
    };
    let flags = JobOptions::new().cores(4u32);
    let spec = sources.job_options(flags).unwrap().build().unwrap();
    assert_eq!(spec.cores, 4);
    assert_eq!(spec.memory, "2GB".parse().unwrap());
    assert_eq!(spec.queue.as_deref(), Some("batch"));
    assert_eq!(spec.account.as_deref(), Some("proj"));
}

#[test]
fn missing_config_file_is_named() {
    let sources = ConfigSources {
        user: None,
        project: Some("/nonexistent/drover.toml".into()),
    };
    let err = sources
        .job_options(JobOptions::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/drover.toml: cannot read it"),
        "{err}"
    );
}

fn directive_lines(spec: &JobSpec) -> Vec<String> {
    spec.directives().iter().map(Directive::render).collect()
}

#[test]
fn directives_carry_the_request() {
    let spec = from_toml(
        r##"cores = 4
memory = "8GB"
walltime = "1h30m"
queue = "small"
account = "proj"
job-name = "w"
log-directory = "/tmp/logs"
gres = "gpu:a100:1"
job-extra-directives = ["--qos=debug", "#SBATCH --exclusive", "-C ib"]"##,
    )
    .unwrap();
    assert_eq!(
        directive_lines(&spec),
        [
            "--job-name=w",
            "--output=/tmp/logs/%x-%j.out",
            "--error=/tmp/logs/%x-%j.err",
            "--partition=small",
            "--account=proj",
            "--nodes=1",
            "--ntasks=1",
            "--cpus-per-task=4",
            "--mem=7630M",
            "--time=01:30:00",
            "--signal=B:USR1@60",
            "--gres=gpu:a100:1",
            "--qos=debug",
            "--exclusive",
            "--constraint=ib",
        ]
    );
}

#[test]
fn skipping_matches_exact_option_names_only() {
    let spec = from_toml(
        r#"cores = 4
job-directives-skip = ["-t", "--mem", "-N"]
job-extra-directives = ["--time-min=10", "--mem-bind=local"]"#,
    )
    .unwrap();
    let lines = directive_lines(&spec);
    assert!(
        lines.contains(&"--cpus-per-task=4".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"--time-min=10".to_string()), "{lines:?}");
    assert!(lines.contains(&"--mem-bind=local".to_string()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("--time=")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("--mem=")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("--nodes")), "{lines:?}");
    // The pool finds its jobs by name and comment: those stay.
    for kept in ["-J", "--comment"] {
        let e = from_toml(&format!("job-directives-skip = [\"{kept}\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be left out"), "{e}");
    }
}

#[test]
fn memory_directive_modes_and_overrides() {
    let per_cpu =
        from_toml("cores = 3\nmemory = \"3GiB\"\nmemory-directive = \"mem-per-cpu\"").unwrap();
    assert!(directive_lines(&per_cpu).contains(&"--mem-per-cpu=1G".to_string()));
    let none = from_toml("memory-directive = \"none\"").unwrap();
    assert!(!directive_lines(&none)
        .iter()
        .any(|l| l.starts_with("--mem")));
    let over = from_toml("cores = 2\njob-cpu = 6\nmemory = \"1GiB\"\njob-mem = \"10GiB\"").unwrap();
    let lines = directive_lines(&over);
    assert!(
        lines.contains(&"--cpus-per-task=6".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"--mem=10G".to_string()), "{lines:?}");
}
