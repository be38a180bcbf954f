//! Keyword arguments into drover's settings. Each `(name, value)` is read
//! as the config file's key would be (`job_cpu` as `job-cpu`), so Python
//! gets the CLI's checks and its words. Native pools layer them over the
//! config files and the `DROVER_*` environment, as the CLI layers flags.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use drover::cluster::Group;
use drover::config::{ConfigSources, JobOptions, PoolOptions};
use drover::dask::DaskSchedulerOptions;

use crate::errors::spec_error;

/// `dict`'s entries as `(config key, TOML value)`, `None` values left out.
fn pairs(dict: &Bound<'_, PyDict>) -> PyResult<Vec<(String, toml::Value)>> {
    let mut out = Vec::new();
    for (key, value) in dict.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        let value: toml::Value = pythonize::depythonize(&value).map_err(|e| {
            PyTypeError::new_err(format!(
                "{key}: {e}; accepted: a string, number, boolean or list of them"
            ))
        })?;
        out.push((key.replace('_', "-"), value));
    }
    Ok(out)
}

/// Job settings from keyword arguments, over the config files' when `layered`.
pub fn job_options(dict: &Bound<'_, PyDict>, layered: bool) -> PyResult<JobOptions> {
    let given = drover::config::job_options_from(pairs(dict)?).map_err(|e| spec_error(&e))?;
    if !layered {
        return Ok(given);
    }
    ConfigSources::discover(None)
        .job_options(given)
        .map_err(|e| spec_error(&e))
}

/// The groups of a pool with groups: `(name, job settings)` pairs, each
/// group's settings over `base`.
pub fn groups(base: &JobOptions, list: &Bound<'_, PyList>) -> PyResult<Vec<Group>> {
    let mut groups = Vec::new();
    for item in list.iter() {
        let (name, dict): (String, Bound<'_, PyDict>) = item.extract()?;
        let own = drover::config::job_options_from(pairs(&dict)?)
            .map_err(|e| PyValueError::new_err(format!("groups[{name:?}]: {e}")))?;
        let spec = base
            .clone()
            .overlay(own)
            .build()
            .map_err(|e| PyValueError::new_err(format!("groups[{name:?}]: {e}")))?;
        groups.push(Group { name, spec });
    }
    Ok(groups)
}

/// Pool settings from keyword arguments, over the config files' when
/// `layered`, over the `DROVER_*` environment always.
pub fn pool_options(dict: &Bound<'_, PyDict>, layered: bool) -> PyResult<PoolOptions> {
    let given = drover::config::pool_options_from(pairs(dict)?).map_err(|e| spec_error(&e))?;
    let below = match layered {
        true => ConfigSources::discover(None).pool_options(PoolOptions::default()),
        false => drover::config::pool_from_env(),
    };
    Ok(below.map_err(|e| spec_error(&e))?.overlay(given))
}

/// How a Dask pool's scheduler starts: `port`, `dashboard_address`, and
/// `extra` arguments of `dask scheduler`.
pub fn dask_scheduler(dict: Option<&Bound<'_, PyDict>>) -> PyResult<DaskSchedulerOptions> {
    let mut options = DaskSchedulerOptions::default();
    let Some(dict) = dict else {
        return Ok(options);
    };
    if let Some(port) = dict.get_item("port")? {
        options.port = port.extract()?;
    }
    if let Some(address) = dict.get_item("dashboard_address")? {
        options.dashboard_address = address.extract()?;
    }
    if let Some(extra) = dict.get_item("extra")? {
        options.extra = extra.extract()?;
    }
    Ok(options)
}

/// The keyword names of job settings and of pool settings (`job_cpu`,
/// `poll_interval`...), for the Python layer to route keywords.
#[pyfunction]
pub fn setting_keys() -> (Vec<String>, Vec<String>) {
    let snake = |keys: &[&str]| keys.iter().map(|k| k.replace('-', "_")).collect();
    (
        snake(drover::config::keys::<JobOptions>()),
        snake(drover::config::keys::<PoolOptions>()),
    )
}

/// Where pools run when `ssh=` is not given: `DROVER_SSH` and
/// `DROVER_REMOTE_DROVER`, else the config files' `[site]` (as the CLI
/// reads them); `(None, None)` for pools on this machine.
#[pyfunction]
pub fn remote_site() -> PyResult<(Option<String>, Option<String>)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // On the host's side of a pool over ssh nothing goes further.
    if env("DROVER_SSH_SIDE").is_some() {
        return Ok((None, None));
    }
    let site = ConfigSources::discover(None)
        .site()
        .map_err(|e| spec_error(&e))?;
    Ok((
        env("DROVER_SSH").or(site.ssh),
        env("DROVER_REMOTE_DROVER").or(site.remote_drover),
    ))
}
