//! Settings given one key at a time: the `DROVER_*` environment overrides,
//! all in one table (each sets one key of `[pool]`; README, "Settings"),
//! and the keyword arguments of the Python API. Values are read as the
//! config file would hold them, so every source gives the same errors.
//! The environment sits above config files and below flags, so a test or
//! a site can shorten an interval without touching a file.

use serde::de::DeserializeOwned;

use super::{JobOptions, PoolOptions, SpecError};

/// One environment override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable.
    pub name: &'static str,
    /// The `[pool]` key it sets.
    pub key: &'static str,
    /// The default, as the README states it.
    pub default: &'static str,
}

/// Every `DROVER_*` variable that tunes a pool (and `SLURMRESTD_URL`,
/// the name slurmrestd's own clients use).
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "DROVER_POLL_INTERVAL",
        key: "poll-interval",
        default: "2s",
    },
    EnvVar {
        name: "DROVER_PASS_POLL_INTERVAL",
        key: "pass-poll-interval",
        default: "0.2s",
    },
    EnvVar {
        name: "DROVER_RETRY_BACKOFF",
        key: "retry-backoff",
        default: "2s",
    },
    EnvVar {
        name: "DROVER_CLOSE_TIMEOUT",
        key: "close-timeout",
        default: "10s",
    },
    EnvVar {
        name: "DROVER_IDLE_TIMEOUT",
        key: "idle-timeout",
        default: "60s",
    },
    EnvVar {
        name: "DROVER_ADAPT_COOLDOWN",
        key: "adapt-cooldown",
        default: "15s",
    },
    EnvVar {
        name: "DROVER_SPILL_AFTER",
        key: "spill-after",
        default: "5m",
    },
    EnvVar {
        name: "DROVER_REPLACE_LEAD",
        key: "replace-lead",
        default: "30s",
    },
    EnvVar {
        name: "DROVER_MAX_STARTUP_FAILURES",
        key: "max-startup-failures",
        default: "3",
    },
    EnvVar {
        name: "DROVER_HELD_JOBS",
        key: "held-jobs",
        default: "release",
    },
    EnvVar {
        name: "DROVER_TASK_MEMORY_GROWTH",
        key: "task-memory-growth",
        default: "2",
    },
    EnvVar {
        name: "DROVER_JOB_MEMORY_GROWTH",
        key: "job-memory-growth",
        default: "2",
    },
    EnvVar {
        name: "DROVER_PREEMPTIONS_TOLERATED",
        key: "preemptions-tolerated",
        default: "2",
    },
    EnvVar {
        name: "DROVER_DASK_START_TIMEOUT",
        key: "dask-start-timeout",
        default: "60s",
    },
    EnvVar {
        name: "DROVER_ACCOUNTING_INTERVAL",
        key: "accounting-interval",
        default: "60s",
    },
    EnvVar {
        name: "DROVER_ACCOUNTING",
        key: "accounting",
        default: "true",
    },
    EnvVar {
        name: "DROVER_SSH_CONNECT_TIMEOUT",
        key: "ssh-connect-timeout",
        default: "120s",
    },
    EnvVar {
        name: "DROVER_REMOTE_GRACE",
        key: "remote-grace",
        default: "10m",
    },
    EnvVar {
        name: "DROVER_HEARTBEAT_INTERVAL",
        key: "heartbeat-interval",
        default: "5s",
    },
    EnvVar {
        name: "DROVER_MISSED_HEARTBEATS",
        key: "missed-heartbeats",
        default: "3",
    },
    EnvVar {
        name: "DROVER_MAX_HELD_POLLS",
        key: "max-held-polls",
        default: "16384",
    },
    EnvVar {
        name: "DROVER_SLURM_TIMEOUT",
        key: "slurm-timeout",
        default: "60s",
    },
    EnvVar {
        name: "DROVER_SLURM_API",
        key: "slurm-api",
        default: "cli",
    },
    EnvVar {
        name: "SLURMRESTD_URL",
        key: "slurmrestd",
        default: "none",
    },
    EnvVar {
        name: "DROVER_SLURM_JWT_FILE",
        key: "slurm-jwt-file",
        default: "none: SLURM_JWT",
    },
    EnvVar {
        name: "DROVER_MAX_CONNECTIONS",
        key: "max-connections",
        default: "open files - 64",
    },
    EnvVar {
        name: "DROVER_MAX_CONNECTIONS_PER_PEER",
        key: "max-connections-per-peer",
        default: "max-connections / 16",
    },
    EnvVar {
        name: "DROVER_HANDSHAKE_TIMEOUT",
        key: "handshake-timeout",
        default: "10s",
    },
    EnvVar {
        name: "DROVER_CONNECTION_IDLE_TIMEOUT",
        key: "connection-idle-timeout",
        default: "30s",
    },
    EnvVar {
        name: "DROVER_MAX_OUTPUT_MEMORY",
        key: "max-output-memory",
        default: "256MiB",
    },
    EnvVar {
        name: "DROVER_JOURNAL_COMPACT_AFTER",
        key: "journal-compact-after",
        default: "64MiB",
    },
    EnvVar {
        name: "DROVER_REATTACH_GRACE",
        key: "reattach-grace",
        default: "60s",
    },
    EnvVar {
        name: "DROVER_PAGE_REFRESH",
        key: "page-refresh",
        default: "2s",
    },
    EnvVar {
        name: "DROVER_TIMELINE_INTERVAL",
        key: "timeline-interval",
        default: "10s",
    },
];

/// A variable's text as the TOML value a config file would hold: a whole
/// number, a number, or else a string.
fn as_toml(text: &str) -> toml::Value {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        toml::Value::Integer(n)
    } else if let Ok(x) = t.parse::<f64>() {
        toml::Value::Float(x)
    } else {
        toml::Value::String(t.to_string())
    }
}

/// Options holding `key` = `value` alone, read as a config file's table.
fn one<T: DeserializeOwned>(key: &str, value: toml::Value) -> Result<T, String> {
    let mut table = toml::Table::new();
    table.insert(key.to_string(), value);
    T::deserialize(table).map_err(|e| e.message().trim().replace('\n', " "))
}

/// `value` as an error message shows it.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The keys a settings table takes (`JobOptions` for `[job]`,
/// `PoolOptions` for `[pool]`), as serde's derive lists them: so that a
/// caller can route a keyword to its table without a second list to keep.
pub fn keys<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    /// A deserializer that only records the fields a struct asks for.
    struct Fields;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields found")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> de::Deserializer<'de> for Fields {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Fields) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// The job options given as `(key, value)` pairs (keys as in `[job]`),
/// each checked alone so an error names its key.
pub fn job_options_from(
    pairs: impl IntoIterator<Item = (String, toml::Value)>,
) -> Result<JobOptions, SpecError> {
    layered(pairs, JobOptions::new(), JobOptions::overlay)
}

/// The pool options given as `(key, value)` pairs (keys as in `[pool]`).
pub fn pool_options_from(
    pairs: impl IntoIterator<Item = (String, toml::Value)>,
) -> Result<PoolOptions, SpecError> {
    layered(pairs, PoolOptions::default(), PoolOptions::overlay)
}

/// `start` with each pair read alone (so an error names its key) and laid
/// over it in turn.
fn layered<T: DeserializeOwned>(
    pairs: impl IntoIterator<Item = (String, toml::Value)>,
    start: T,
    overlay: fn(T, T) -> T,
) -> Result<T, SpecError> {
    let mut options = start;
    for (key, value) in pairs {
        let one: T = one(&key, value.clone()).map_err(|message| SpecError::Setting {
            name: key.clone(),
            value: shown(&value),
            message,
        })?;
        options = overlay(options, one);
    }
    Ok(options)
}

/// The pool options set by `lookup` (normally the process environment).
pub fn pool_from(lookup: impl Fn(&str) -> Option<String>) -> Result<PoolOptions, SpecError> {
    let mut options = PoolOptions::default();
    for var in ENV_VARS {
        let Some(text) = lookup(var.name) else {
            continue;
        };
        let one: PoolOptions =
            one(var.key, as_toml(&text)).map_err(|message| SpecError::Setting {
                name: format!("{} (environment)", var.name),
                value: text.clone(),
                message,
            })?;
        options = options.overlay(one);
    }
    Ok(options)
}

/// The pool options the process environment sets.
pub fn pool_from_env() -> Result<PoolOptions, SpecError> {
    pool_from(|name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_of_each_table_are_its_fields() {
        let job = keys::<JobOptions>();
        assert!(
            job.contains(&"job-cpu") && job.contains(&"walltime"),
            "{job:?}"
        );
        let pool = keys::<PoolOptions>();
        assert!(pool.contains(&"poll-interval") && !pool.contains(&"walltime"));
        // Every environment variable sets a key the table has.
        assert!(ENV_VARS.iter().all(|v| pool.contains(&v.key)));
    }

    #[test]
    fn each_variable_sets_its_key() {
        let env = |name: &str| match name {
            "DROVER_POLL_INTERVAL" => Some("0.5".to_string()),
            "DROVER_MAX_STARTUP_FAILURES" => Some("5".to_string()),
            "DROVER_IDLE_TIMEOUT" => Some("2m".to_string()),
            _ => None,
        };
        let o = pool_from(env).unwrap();
        assert_eq!(o.poll_interval.unwrap().duration().as_millis(), 500);
        assert_eq!(o.max_startup_failures, Some(5));
        assert_eq!(o.idle_timeout.unwrap().duration().as_secs(), 120);
        assert_eq!(o.workers, None);
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let env = |name: &str| (name == "DROVER_MISSED_HEARTBEATS").then(|| "many".to_string());
        let e = pool_from(env).unwrap_err().to_string();
        assert!(
            e.contains("DROVER_MISSED_HEARTBEATS") && e.contains("`many`"),
            "{e}"
        );
        let env = |name: &str| (name == "DROVER_POLL_INTERVAL").then(|| "soon".to_string());
        let e = pool_from(env).unwrap_err().to_string();
        assert!(
            e.contains("DROVER_POLL_INTERVAL") && e.contains("90s"),
            "{e}"
        );
    }

    #[test]
    fn keyword_settings_are_checked_one_by_one_naming_the_key() {
        let ok = job_options_from([
            ("cores".to_string(), toml::Value::Integer(4)),
            ("memory".to_string(), toml::Value::String("2 GB".into())),
        ])
        .unwrap();
        assert_eq!(ok.cores, Some(4));
        let e = job_options_from([(
            "walltime".to_string(),
            toml::Value::String("25:99:00".into()),
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("invalid value `25:99:00` for walltime: minutes must be below 60"),
            "{e}"
        );
        let e = job_options_from([("cores".to_string(), toml::Value::String("four".into()))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("for cores") && e.contains("`four`"), "{e}");
        let e = pool_options_from([("adapt".to_string(), toml::Value::String("4:2".into()))])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("for adapt") && e.contains("MIN is above MAX"),
            "{e}"
        );
    }

    #[test]
    fn every_variable_is_documented_in_the_readme_with_its_default() {
        let readme = include_str!("../../README.md");
        for var in ENV_VARS {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}`", var.name)))
                .unwrap_or_else(|| panic!("README has no table row for {}", var.name));
            assert!(row.contains(&format!("`{}`", var.key)), "{row}");
            assert!(row.contains(&format!("`{}`", var.default)), "{row}");
        }
    }
}
