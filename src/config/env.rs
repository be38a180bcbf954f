//! The `DROVER_*` environment overrides, all in one table. Each sets one
//! key of `[pool]` (README, "Settings from the environment"); values are
//! written as in the config file. They sit above config files and below
//! command-line flags, so a test or a site can shorten an interval without
//! touching a file.

use super::{PoolOptions, SpecError};

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

/// Every `DROVER_*` variable that tunes a pool.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "DROVER_POLL_INTERVAL",
        key: "poll-interval",
        default: "2s",
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
        name: "DROVER_DASK_START_TIMEOUT",
        key: "dask-start-timeout",
        default: "60s",
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
        default: "1024",
    },
    EnvVar {
        name: "DROVER_SLURM_TIMEOUT",
        key: "slurm-timeout",
        default: "60s",
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

/// The pool options set by `lookup` (normally the process environment).
pub fn pool_from(lookup: impl Fn(&str) -> Option<String>) -> Result<PoolOptions, SpecError> {
    let mut options = PoolOptions::default();
    for var in ENV_VARS {
        let Some(text) = lookup(var.name) else {
            continue;
        };
        let mut table = toml::Table::new();
        table.insert(var.key.to_string(), as_toml(&text));
        let one = PoolOptions::deserialize_table(table).map_err(|message| SpecError::Env {
            var: var.name,
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

impl PoolOptions {
    fn deserialize_table(table: toml::Table) -> Result<PoolOptions, String> {
        use serde::Deserialize;
        PoolOptions::deserialize(table).map_err(|e| e.message().trim().replace('\n', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
