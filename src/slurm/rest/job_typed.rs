//! A job description in the data_parser form (v0.0.40 on: Slurm 23.11 to
//! 26.05), made from the text form `job_desc` reads a script's directives
//! into. The openapi/v0.0.36 to v0.0.38 plugins parsed each field's text
//! with sbatch's own parser; the data_parser takes typed values: numbers,
//! `{set, number}` for time limits (minutes) and memory (MiB), lists of
//! flags, `NAME=VALUE` lists for the environment, and GPUs as TRES. So
//! each field is converted here, as sbatch would read its text; a field
//! with no conversion is refused by its option's name, before anything is
//! submitted.

use serde_json::{json, Map, Value};

use super::version::ApiVersion;
use crate::config::Walltime;
use crate::slurm::SlurmError;

/// How a text field becomes a data_parser field.
enum Becomes {
    /// The same name, the same text.
    Same,
    /// The same name, an integer.
    Integer,
    /// A time limit in minutes, `{set, number}`.
    Minutes,
    /// An amount of memory in MiB, `{set, number}`.
    Mebibytes,
    /// GPUs as a TRES string in this field (`gres/gpu:2`).
    Gpus(&'static str),
    /// `--gres`: each item as `gres/ITEM` in `tres_per_node`.
    Gres,
    /// A list of upper-case flags.
    Flags,
}

/// Every text field the data_parser takes, and how. The rest are refused.
const FIELDS: &[(&str, Becomes)] = &[
    ("account", Becomes::Same),
    ("array", Becomes::Same),
    ("batch_features", Becomes::Same),
    ("burst_buffer", Becomes::Same),
    ("cluster_constraint", Becomes::Same),
    ("comment", Becomes::Same),
    ("constraints", Becomes::Same),
    ("container", Becomes::Same),
    ("cpus_per_task", Becomes::Integer),
    ("current_working_directory", Becomes::Same),
    ("dependency", Becomes::Same),
    ("distribution", Becomes::Same),
    ("gpus", Becomes::Gpus("tres_per_job")),
    ("gpus_per_node", Becomes::Gpus("tres_per_node")),
    ("gpus_per_socket", Becomes::Gpus("tres_per_socket")),
    ("gpus_per_task", Becomes::Gpus("tres_per_task")),
    ("gres", Becomes::Gres),
    ("licenses", Becomes::Same),
    ("mail_type", Becomes::Flags),
    ("mail_user", Becomes::Same),
    ("mcs_label", Becomes::Same),
    ("memory_binding", Becomes::Same),
    ("memory_per_cpu", Becomes::Mebibytes),
    ("memory_per_node", Becomes::Mebibytes),
    ("minimum_cpus_per_node", Becomes::Integer),
    ("name", Becomes::Same),
    ("nice", Becomes::Integer),
    ("nodes", Becomes::Same),
    ("open_mode", Becomes::Flags),
    ("partition", Becomes::Same),
    ("prefer", Becomes::Same),
    ("qos", Becomes::Same),
    ("reservation", Becomes::Same),
    ("sockets_per_node", Becomes::Integer),
    ("standard_error", Becomes::Same),
    ("standard_input", Becomes::Same),
    ("standard_output", Becomes::Same),
    ("tasks", Becomes::Integer),
    ("tasks_per_core", Becomes::Integer),
    ("tasks_per_node", Becomes::Integer),
    ("tasks_per_socket", Becomes::Integer),
    ("thread_specification", Becomes::Integer),
    ("threads_per_core", Becomes::Integer),
    ("time_limit", Becomes::Minutes),
    ("time_minimum", Becomes::Minutes),
    ("wckey", Becomes::Same),
];

fn refused(field: &str, value: &Value, why: &str, version: ApiVersion) -> SlurmError {
    SlurmError::Config {
        message: format!(
            "the job's {field} `{}` {why} in slurmrestd's {version} job description: leave it out \
             (job-directives-skip) or use slurm-api = \"cli\"",
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string)
        ),
    }
}

fn set(number: u64) -> Value {
    json!({"set": true, "infinite": false, "number": number})
}

/// Memory as sbatch reads it: a whole number with an optional unit (K, M,
/// G, T; powers of 1024), M when it has none; in MiB, rounded up.
fn mebibytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "M"),
    };
    let n: u64 = digits.parse().ok()?;
    let kib = match unit.to_ascii_uppercase().as_str() {
        "K" | "KB" => n,
        "M" | "MB" => n.checked_mul(1 << 10)?,
        "G" | "GB" => n.checked_mul(1 << 20)?,
        "T" | "TB" => n.checked_mul(1 << 30)?,
        _ => return None,
    };
    Some(kib.div_ceil(1 << 10))
}

/// `--signal=[B:]SIG[@TIME]` as the warning fields.
fn signal(text: &str, job: &mut Map<String, Value>) -> Option<()> {
    let (batch, rest) = match text.strip_prefix("B:") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (sig, delay) = match rest.split_once('@') {
        Some((s, d)) => (s, d.parse::<u64>().ok()?),
        None => (rest, 60),
    };
    if sig.is_empty() || !sig.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    job.insert("kill_warning_signal".into(), Value::String(sig.into()));
    job.insert("kill_warning_delay".into(), set(delay));
    if batch {
        job.insert("kill_warning_flags".into(), json!(["BATCH_JOB"]));
    }
    Some(())
}

/// One field's value in the data_parser form; `None` when its text does
/// not read as the field's kind.
fn convert(becomes: &Becomes, text: &str) -> Option<(Option<&'static str>, Value)> {
    let gpus = |n: &str| format!("gres/gpu:{n}");
    Some(match becomes {
        Becomes::Same => (None, Value::String(text.into())),
        Becomes::Integer => (None, Value::from(text.trim().parse::<i64>().ok()?)),
        Becomes::Minutes => {
            let w: Walltime = text.parse().ok()?;
            (None, set(w.as_secs().div_ceil(60)))
        }
        Becomes::Mebibytes => (None, set(mebibytes(text)?)),
        Becomes::Gpus(field) => (Some(field), Value::String(gpus(text))),
        Becomes::Gres => {
            let items: Vec<String> = text
                .split(',')
                .map(|g| match g.strip_prefix("gres/") {
                    Some(_) => g.to_string(),
                    None => format!("gres/{g}"),
                })
                .collect();
            (Some("tres_per_node"), Value::String(items.join(",")))
        }
        Becomes::Flags => (
            None,
            Value::Array(
                text.split(',')
                    .map(|f| Value::String(f.trim().to_ascii_uppercase()))
                    .collect(),
            ),
        ),
    })
}

/// The job description `text` (in the text form) in the data_parser form.
/// `environment` is its `NAME=VALUE` list.
pub fn typed(
    text: Map<String, Value>,
    version: ApiVersion,
) -> Result<Map<String, Value>, SlurmError> {
    let mut job = Map::new();
    for (field, value) in text {
        match (field.as_str(), &value) {
            ("hold" | "requeue", Value::Bool(_)) => {
                job.insert(field, value);
            }
            ("environment", Value::Object(env)) => {
                let list: Vec<Value> = env
                    .iter()
                    .map(|(k, v)| Value::String(format!("{k}={}", v.as_str().unwrap_or_default())))
                    .collect();
                job.insert(field, Value::Array(list));
            }
            ("exclusive", Value::String(how)) => {
                let shared = match how.as_str() {
                    "exclusive" => "none",
                    "user" => "user",
                    "mcs" => "mcs",
                    "topo" => "topo",
                    _ => return Err(refused(&field, &value, "has no equivalent", version)),
                };
                job.insert("shared".into(), json!([shared]));
            }
            ("oversubscribe", Value::Bool(true)) => {
                job.insert("shared".into(), json!(["oversubscribe"]));
            }
            ("signal", Value::String(text)) => {
                signal(text, &mut job).ok_or_else(|| {
                    refused(&field, &value, "is not [B:]SIGNAL[@SECONDS]", version)
                })?;
            }
            (name, Value::String(text)) => {
                let Some((_, becomes)) = FIELDS.iter().find(|(f, _)| *f == name) else {
                    return Err(refused(name, &value, "has no field", version));
                };
                let (to, converted) = convert(becomes, text)
                    .ok_or_else(|| refused(name, &value, "cannot be read", version))?;
                job.insert(to.unwrap_or(name).to_string(), converted);
            }
            (name, _) => return Err(refused(name, &value, "has no field", version)),
        }
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn drovers_directives_take_their_typed_forms() {
        let job = typed(
            text(&[
                ("name", json!("w-abc")),
                ("cpus_per_task", json!("4")),
                ("memory_per_node", json!("3815M")),
                ("memory_per_cpu", json!("2G")),
                ("time_limit", json!("01:00:30")),
                ("signal", json!("B:USR1@60")),
                ("exclusive", json!("exclusive")),
                ("gres", json!("gpu:2")),
                ("gpus_per_task", json!("1")),
                ("mail_type", json!("end,fail")),
                ("hold", json!(true)),
                ("environment", json!({"PATH": "/bin", "X": "a=b"})),
            ]),
            ApiVersion::V0042,
        )
        .unwrap();
        assert_eq!(job["name"], "w-abc");
        assert_eq!(job["cpus_per_task"], 4);
        assert_eq!(job["memory_per_node"]["number"], 3815);
        assert_eq!(job["memory_per_cpu"]["number"], 2048);
        assert_eq!(job["time_limit"]["number"], 61, "minutes, rounded up");
        assert_eq!(job["kill_warning_signal"], "USR1");
        assert_eq!(job["kill_warning_delay"]["number"], 60);
        assert_eq!(job["kill_warning_flags"], json!(["BATCH_JOB"]));
        assert_eq!(job["shared"], json!(["none"]));
        assert_eq!(job["tres_per_node"], "gres/gpu:2");
        assert_eq!(job["tres_per_task"], "gres/gpu:1");
        assert_eq!(job["mail_type"], json!(["END", "FAIL"]));
        assert_eq!(job["hold"], true);
        assert_eq!(job["environment"], json!(["PATH=/bin", "X=a=b"]));
    }

    #[test]
    fn what_has_no_typed_form_is_refused_by_name() {
        for (field, value) in [
            ("time_limit", json!("soon")),
            ("memory_per_node", json!("8Q")),
            ("cpus_per_task", json!("four")),
            ("signal", json!("B:USR1@later")),
            ("core_specification", json!("2")),
            ("exclusive", json!("sometimes")),
        ] {
            let e = typed(text(&[(field, value.clone())]), ApiVersion::V0042).unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains(field) && e.contains("slurm-api = \"cli\""),
                "{e}"
            );
        }
    }

    #[test]
    fn memory_reads_as_sbatch_reads_it() {
        assert_eq!(mebibytes("100"), Some(100));
        assert_eq!(mebibytes("1536K"), Some(2));
        assert_eq!(mebibytes("1T"), Some(1 << 20));
        assert_eq!(mebibytes("99999999999999T"), None);
    }
}
