//! A batch script as slurmrestd takes it. slurmrestd does not read a
//! script's `#SBATCH` lines (checked on Slurm 22.05: a job submitted with
//! them ran as `allocation`, without its time limit), so the directives are
//! read here, as sbatch reads them, into the job description's fields. The
//! openapi/v0.0.36 to v0.0.38 plugins parse each field's text with
//! sbatch's own option parser, so values pass as written (`--time=1:00:00`
//! is `"time_limit": "1:00:00"`). An option with no field is refused by
//! name, before anything is submitted.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::version::ApiVersion;
use crate::slurm::{SlurmError, SubmitOptions};

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    /// `--time=10` or `--time 10`.
    Required,
    /// `--exclusive` or `--exclusive=user`, never a separate word.
    Optional,
    /// A flag.
    Flag,
}

/// Where an option goes in the job description.
#[derive(Clone, Copy)]
enum Target {
    /// A field holding the value's text.
    Text(&'static str),
    /// A boolean field, set to this when the flag is given.
    Bool(&'static str, bool),
    /// The job's environment (`--export`).
    Export,
}

use Arity::{Flag, Optional, Required};
use Target::{Bool, Export, Text};

/// sbatch's options that the job description of v0.0.36 to v0.0.38 holds.
const OPTIONS: &[(&str, Option<char>, Arity, Target)] = &[
    ("account", Some('A'), Required, Text("account")),
    (
        "acctg-freq",
        None,
        Required,
        Text("account_gather_frequency"),
    ),
    ("array", Some('a'), Required, Text("array")),
    ("batch", None, Required, Text("batch_features")),
    ("begin", Some('b'), Required, Text("begin_time")),
    ("bb", None, Required, Text("burst_buffer")),
    (
        "chdir",
        Some('D'),
        Required,
        Text("current_working_directory"),
    ),
    (
        "cluster-constraint",
        None,
        Required,
        Text("cluster_constraint"),
    ),
    ("comment", None, Required, Text("comment")),
    ("constraint", Some('C'), Required, Text("constraints")),
    ("container", None, Required, Text("container")),
    ("core-spec", Some('S'), Required, Text("core_specification")),
    ("cores-per-socket", None, Required, Text("cores_per_socket")),
    ("cpu-freq", None, Required, Text("cpu_frequency")),
    ("cpus-per-gpu", None, Required, Text("cpus_per_gpu")),
    ("cpus-per-task", Some('c'), Required, Text("cpus_per_task")),
    ("deadline", None, Required, Text("deadline")),
    ("delay-boot", None, Required, Text("delay_boot")),
    ("dependency", Some('d'), Required, Text("dependency")),
    ("distribution", Some('m'), Required, Text("distribution")),
    ("error", Some('e'), Required, Text("standard_error")),
    ("exclusive", None, Optional, Text("exclusive")),
    ("export", None, Required, Export),
    (
        "get-user-env",
        None,
        Optional,
        Bool("get_user_environment", true),
    ),
    ("gpu-bind", None, Required, Text("gpu_binding")),
    ("gpu-freq", None, Required, Text("gpu_frequency")),
    ("gpus", Some('G'), Required, Text("gpus")),
    ("gpus-per-node", None, Required, Text("gpus_per_node")),
    ("gpus-per-socket", None, Required, Text("gpus_per_socket")),
    ("gpus-per-task", None, Required, Text("gpus_per_task")),
    ("gres", None, Required, Text("gres")),
    ("gres-flags", None, Required, Text("gres_flags")),
    ("hold", Some('H'), Flag, Bool("hold", true)),
    ("input", Some('i'), Required, Text("standard_input")),
    ("job-name", Some('J'), Required, Text("name")),
    (
        "kill-on-invalid-dep",
        None,
        Required,
        Text("kill_on_invalid_dependency"),
    ),
    ("licenses", Some('L'), Required, Text("licenses")),
    ("mail-type", None, Required, Text("mail_type")),
    ("mail-user", None, Required, Text("mail_user")),
    ("mcs-label", None, Required, Text("mcs_label")),
    ("mem", None, Required, Text("memory_per_node")),
    ("mem-bind", None, Required, Text("memory_binding")),
    ("mem-per-cpu", None, Required, Text("memory_per_cpu")),
    ("mem-per-gpu", None, Required, Text("memory_per_gpu")),
    ("mincpus", None, Required, Text("minimum_cpus_per_node")),
    ("nice", None, Optional, Text("nice")),
    ("no-kill", Some('k'), Optional, Bool("no_kill", true)),
    ("no-requeue", None, Flag, Bool("requeue", false)),
    ("nodes", Some('N'), Required, Text("nodes")),
    ("ntasks", Some('n'), Required, Text("tasks")),
    ("ntasks-per-core", None, Required, Text("tasks_per_core")),
    ("ntasks-per-node", None, Required, Text("tasks_per_node")),
    (
        "ntasks-per-socket",
        None,
        Required,
        Text("tasks_per_socket"),
    ),
    ("open-mode", None, Required, Text("open_mode")),
    ("output", Some('o'), Required, Text("standard_output")),
    (
        "oversubscribe",
        Some('s'),
        Flag,
        Bool("oversubscribe", true),
    ),
    ("partition", Some('p'), Required, Text("partition")),
    ("prefer", None, Required, Text("prefer")),
    ("priority", None, Required, Text("priority")),
    ("qos", Some('q'), Required, Text("qos")),
    ("requeue", None, Flag, Bool("requeue", true)),
    ("reservation", None, Required, Text("reservation")),
    ("signal", None, Required, Text("signal")),
    ("sockets-per-node", None, Required, Text("sockets_per_node")),
    ("spread-job", None, Flag, Bool("spread_job", true)),
    ("thread-spec", None, Required, Text("thread_specification")),
    ("threads-per-core", None, Required, Text("threads_per_core")),
    ("time", Some('t'), Required, Text("time_limit")),
    ("time-min", None, Required, Text("time_minimum")),
    ("use-min-nodes", None, Flag, Bool("minimum_nodes", true)),
    ("wait-all-nodes", None, Required, Text("wait_all_nodes")),
    ("wckey", None, Required, Text("wckey")),
];

/// The most directives one script may carry.
const MAX_DIRECTIVES: usize = 1000;

fn unsupported(what: &str, version: ApiVersion) -> SlurmError {
    SlurmError::Config {
        message: format!(
            "`#SBATCH {what}` has no field in slurmrestd's {version} job description: leave it out \
             (job-directives-skip) or use slurm-api = \"cli\""
        ),
    }
}

/// The `#SBATCH` lines sbatch would read: those before the first line that
/// is neither a comment nor blank.
fn directive_lines(script: &str) -> impl Iterator<Item = &str> {
    script
        .lines()
        .skip(usize::from(script.starts_with("#!")))
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("#SBATCH"))
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// One option and its value, read from a directive's words as getopt does.
fn options_of(
    words: &[String],
    version: ApiVersion,
) -> Result<Vec<(usize, Option<String>)>, SlurmError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let (entry, attached) = if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let found = OPTIONS.iter().position(|o| o.0 == name);
            (found.ok_or_else(|| unsupported(word, version))?, value)
        } else if let Some(short) = word.strip_prefix('-').and_then(|s| s.chars().next()) {
            let found = OPTIONS.iter().position(|o| o.1 == Some(short));
            let rest = &word[1 + short.len_utf8()..];
            let value = (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_string());
            (found.ok_or_else(|| unsupported(word, version))?, value)
        } else {
            return Err(unsupported(word, version));
        };
        i += 1;
        let value = match (OPTIONS[entry].2, attached) {
            (Flag, Some(_)) => return Err(unsupported(word, version)),
            (Required, None) => {
                let v = words.get(i).cloned().ok_or_else(|| SlurmError::Config {
                    message: format!("`#SBATCH {word}` needs a value"),
                })?;
                i += 1;
                Some(v)
            }
            (_, value) => value,
        };
        out.push((entry, value));
    }
    Ok(out)
}

/// The job's environment, as `--export` (or its absence) chooses it: every
/// variable of `base` (sbatch's `ALL`), none (`NONE`), or those named.
fn environment(base: &BTreeMap<String, String>, export: Option<&str>) -> BTreeMap<String, String> {
    let Some(spec) = export else {
        return base.clone();
    };
    let mut env = BTreeMap::new();
    for item in spec.split(',') {
        match item.split_once('=') {
            Some((k, v)) => {
                env.insert(k.to_string(), v.to_string());
            }
            None if item == "ALL" => env.extend(base.clone()),
            None if item == "NONE" || item == "NIL" => {}
            None => {
                if let Some(v) = base.get(item) {
                    env.insert(item.to_string(), v.clone());
                }
            }
        }
    }
    env
}

/// The body of `POST .../job/submit` for `script` with `options`: the
/// script's directives as fields, then `options` over them, as sbatch
/// lets its command line win over the script. `base_env` is what the job
/// inherits (the submitter's environment), `cwd` where it runs.
pub fn submission(
    script: &str,
    options: &SubmitOptions,
    base_env: &BTreeMap<String, String>,
    cwd: &str,
    version: ApiVersion,
) -> Result<Value, SlurmError> {
    let mut job = Map::new();
    let mut export = None;
    for (n, line) in directive_lines(script).enumerate() {
        if n >= MAX_DIRECTIVES {
            return Err(SlurmError::Config {
                message: format!("the script has more than {MAX_DIRECTIVES} #SBATCH lines"),
            });
        }
        let words = shlex::split(line).ok_or_else(|| SlurmError::Config {
            message: format!("`#SBATCH{line}` has unbalanced quotes"),
        })?;
        for (entry, value) in options_of(&words, version)? {
            let (_, _, _, target) = OPTIONS[entry];
            match target {
                Text(field) => {
                    // What sbatch takes a bare optional-value option for
                    // (checked: slurmrestd refuses an empty `exclusive`).
                    let value = value.unwrap_or_else(|| match field {
                        "exclusive" => "exclusive".into(),
                        "nice" => "100".into(),
                        _ => String::new(),
                    });
                    let value = match (field, version.signals_batch_shell()) {
                        ("signal", false) => value.strip_prefix("B:").unwrap_or(&value).to_string(),
                        _ => value,
                    };
                    job.insert(field.into(), Value::String(value));
                }
                Bool(field, set) => {
                    job.insert(field.into(), Value::Bool(set));
                }
                Export => export = value,
            }
        }
    }
    apply_options(&mut job, options);
    let mut env = environment(base_env, export.as_deref());
    env.extend(options.env.iter().cloned());
    job.entry("current_working_directory")
        .or_insert_with(|| Value::String(cwd.to_string()));
    job.insert(
        "environment".into(),
        Value::Object(
            env.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    if !version.data_parser() {
        return Ok(serde_json::json!({ "script": script, "job": job }));
    }
    let mut job = super::job_typed::typed(job, version)?;
    if !options.exclude.is_empty() {
        job.insert(
            "excluded_nodes".into(),
            Value::from(options.exclude.clone()),
        );
    }
    // The data_parser reads the script from inside the description.
    job.insert("script".into(), Value::String(script.to_string()));
    Ok(serde_json::json!({ "job": job }))
}

/// The submission's own options, over the script's.
fn apply_options(job: &mut Map<String, Value>, options: &SubmitOptions) {
    if options.hold {
        job.insert("hold".into(), Value::Bool(true));
    }
    if let Some(n) = options.array {
        job.insert(
            "array".into(),
            Value::String(format!("0-{}", n.saturating_sub(1))),
        );
    }
    if let Some((out, err)) = &options.logs {
        job.insert("standard_output".into(), Value::String(out.clone()));
        job.insert("standard_error".into(), Value::String(err.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("PATH", "/usr/bin"), ("HOME", "/home/u")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn submit(script: &str, options: &SubmitOptions) -> Result<Value, SlurmError> {
        submission(script, options, &env(), "/work", ApiVersion::V0038)
    }

    #[test]
    fn drover_directives_become_fields() {
        let script = "#!/usr/bin/env bash\n#SBATCH --job-name=w-abc\n#SBATCH --output=/l/%x-%j.out\n\
                      #SBATCH -p batch\n#SBATCH --nodes=1\n#SBATCH --cpus-per-task=4\n#SBATCH --mem=8192M\n\
                      #SBATCH --time=00:30:00\n#SBATCH --signal=B:USR1@60\n#SBATCH --comment=drover:abc\n\
                      #SBATCH --exclusive\n#SBATCH --qos 'high prio'\n\necho hi\n#SBATCH --ignored=1\n";
        let options = SubmitOptions {
            array: Some(4),
            hold: true,
            env: vec![("DROVER_JOB_INDEX_BASE".into(), "8".into())],
            ..Default::default()
        };
        let body = submit(script, &options).unwrap();
        let job = &body["job"];
        assert_eq!(body["script"], script);
        assert_eq!(job["name"], "w-abc");
        assert_eq!(job["standard_output"], "/l/%x-%j.out");
        assert_eq!(job["partition"], "batch");
        assert_eq!(job["cpus_per_task"], "4");
        assert_eq!(job["memory_per_node"], "8192M");
        assert_eq!(job["time_limit"], "00:30:00");
        // These versions' parser refuses B: (batch shell only).
        assert_eq!(job["signal"], "USR1@60");
        assert_eq!(job["comment"], "drover:abc");
        assert_eq!(job["exclusive"], "exclusive");
        assert_eq!(job["qos"], "high prio");
        assert_eq!(job["array"], "0-3");
        assert_eq!(job["hold"], true);
        assert_eq!(job["current_working_directory"], "/work");
        assert_eq!(job["environment"]["PATH"], "/usr/bin");
        assert_eq!(job["environment"]["DROVER_JOB_INDEX_BASE"], "8");
        // sbatch stops at the first command: the last line is no directive.
        assert!(job.get("ignored").is_none());
    }

    #[test]
    fn export_chooses_the_environment() {
        let only = submit(
            "#!/bin/sh\n#SBATCH --export=NONE,X=1\ntrue\n",
            &Default::default(),
        )
        .unwrap();
        let env = only["job"]["environment"].as_object().unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!(env["X"], "1");
        let named = submit(
            "#!/bin/sh\n#SBATCH --export=PATH\ntrue\n",
            &Default::default(),
        )
        .unwrap();
        assert_eq!(named["job"]["environment"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn options_without_a_field_are_refused_by_name() {
        for (script, named) in [
            ("#!/bin/sh\n#SBATCH --exclude=node1\n", "--exclude=node1"),
            ("#!/bin/sh\n#SBATCH -w node2\n", "-w"),
            ("#!/bin/sh\n#SBATCH --hold=yes\n", "--hold=yes"),
            ("#!/bin/sh\n#SBATCH stray\n", "stray"),
        ] {
            let e = submit(script, &Default::default()).unwrap_err();
            assert!(matches!(e, SlurmError::Config { .. }));
            let e = e.to_string();
            assert!(
                e.contains(named) && e.contains("slurm-api = \"cli\""),
                "{e}"
            );
        }
        let e = submit("#!/bin/sh\n#SBATCH --time\n", &Default::default()).unwrap_err();
        assert!(e.to_string().contains("needs a value"), "{e}");
        let e = submit("#!/bin/sh\n#SBATCH --comment='x\n", &Default::default()).unwrap_err();
        assert!(e.to_string().contains("quotes"), "{e}");
    }

    #[test]
    fn short_options_take_attached_or_following_values() {
        let body = submit(
            "#!/bin/sh\n#SBATCH -J name -t10 -N 2 -H\n",
            &Default::default(),
        )
        .unwrap();
        let job = &body["job"];
        assert_eq!(job["name"], "name");
        assert_eq!(job["time_limit"], "10");
        assert_eq!(job["nodes"], "2");
        assert_eq!(job["hold"], true);
    }
}
