//! What a user asks for, parsed and validated once: typed values (`Memory`,
//! `Walltime`, `Timeout`), the layered options of a worker job (`[job]`)
//! and of a pool (`[pool]`): defaults, user config, project config, the
//! `DROVER_*` environment (pool settings only), flags; and the validated
//! `JobSpec` a job's options build.

pub mod args;
mod checks;
mod directive;
mod env;
mod file;
mod group;
mod growth;
mod memory;
mod options;
mod pool;
pub mod resource;
mod sizing;
mod slurm_api;
mod spec;
mod timeout;
mod walltime;

pub use checks::{DEFAULT_DASK_WORKER_MODULE, MAX_JOB_CORES};
pub use directive::Directive;
pub use env::{
    job_options_from, keys, pool_from, pool_from_env, pool_options_from, EnvVar, ENV_VARS,
};
pub use file::{ConfigFile, ConfigSources, SiteOptions};
pub use group::GroupOptions;
pub use growth::{MemoryGrowth, GROWTH_FORMS};
pub use memory::{Memory, MAX_MEMORY, MEMORY_FORMS};
pub use options::{HeaderStyle, JobOptions, MemoryDirective, NannyMode, WorkerKind};
pub use pool::{AdaptRange, HeldJobs, PoolOptions, ADAPT_FORMS};
pub use sizing::{Ask, PerJob};
pub use slurm_api::{RestEndpoint, SlurmApi, REST_ENDPOINT_FORMS, SLURM_API_FORMS};
pub use spec::JobSpec;
pub use timeout::{Timeout, TIMEOUT_FORMS};
pub use walltime::{Walltime, WALLTIME_FORMS};

use crate::exit::{ExitStatus, USAGE};

use std::path::PathBuf;

/// Why one value could not be parsed, and which forms would have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; accepted: {accepted}")]
pub struct ValueError {
    /// The value as the user wrote it.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
    /// The accepted forms.
    pub accepted: String,
}

impl ValueError {
    pub(crate) fn new(value: &str, reason: &str, accepted: &str) -> Self {
        ValueError {
            value: value.to_string(),
            reason: reason.to_string(),
            accepted: accepted.to_string(),
        }
    }
}

/// A job specification that cannot be used, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// One field holds a value outside its accepted forms.
    #[error("invalid value `{}` for {field}: {problem}", .problem.value.escape_debug())]
    Invalid {
        /// The field, spelled as in config files.
        field: &'static str,
        /// What was wrong with the value.
        problem: ValueError,
    },
    /// Fields that are fine alone but contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// A config file another user made or may change: its prologue would
    /// become a line of our job scripts.
    /// (The check's own words: which file, whose, and the fix.)
    #[error("{0}")]
    Untrusted(String),
    /// A config file that cannot be read or parsed.
    #[error("config file {}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong, with line and column where known.
        message: String,
    },
    /// A setting given on its own (an environment variable, a keyword
    /// argument) that cannot be used.
    #[error("invalid value `{}` for {name}: {message}", .value.escape_debug())]
    Setting {
        /// The setting, as it was given.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong, with the accepted forms.
        message: String,
    },
}

impl ExitStatus for SpecError {
    fn exit_code(&self) -> u8 {
        match self {
            SpecError::Invalid { .. }
            | SpecError::Conflict(_)
            | SpecError::File { .. }
            | SpecError::Untrusted(_)
            | SpecError::Setting { .. } => USAGE,
        }
    }
}

impl SpecError {
    pub(crate) fn invalid(field: &'static str, source: ValueError) -> Self {
        SpecError::Invalid {
            field,
            problem: source,
        }
    }
}

/// Checks that `value` is a single `#SBATCH`-safe token: not empty, no
/// whitespace, no control characters, not starting with `-` (which sbatch
/// would read as another option).
pub(crate) fn check_token(value: &str, accepted: &str) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::new(value, "it is empty", accepted));
    }
    check_line(value, accepted)?;
    if value.chars().any(char::is_whitespace) {
        return Err(ValueError::new(value, "it contains whitespace", accepted));
    }
    if value.starts_with('-') {
        return Err(ValueError::new(value, "it starts with `-`", accepted));
    }
    Ok(())
}

/// Checks that `value` fits on one line of a job script: no newline, NUL or
/// other control character (a tab is allowed).
pub(crate) fn check_line(value: &str, accepted: &str) -> Result<(), ValueError> {
    if let Some(c) = value.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(ValueError::new(
            value,
            &format!("it contains the control character {:?}", c),
            accepted,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// An error naming `field` unless `value` is at least `min_ms`
/// milliseconds: intervals shorter than that cannot work.
pub(crate) fn duration_at_least(
    field: &'static str,
    value: std::time::Duration,
    min_ms: u64,
) -> Result<(), SpecError> {
    if value >= std::time::Duration::from_millis(min_ms) {
        return Ok(());
    }
    Err(SpecError::invalid(
        field,
        ValueError::new(
            &format!("{value:?}"),
            &format!("it is shorter than {min_ms} ms"),
            &format!("a duration of {min_ms} ms or more, such as `2s`"),
        ),
    ))
}
