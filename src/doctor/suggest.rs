//! The `drover.toml` the doctor suggests: the settings it checked, mended
//! where a check failed, so a pool started from it gets past what the
//! doctor saw (pure).

use super::facts::{Facts, ProbeOutcome};
use crate::config::{JobSpec, PoolOptions, SlurmApi, Walltime};

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The interface the workers should register on: the one named if the
/// probe's node has it, else the one the probe left from.
fn interface(spec: &JobSpec, facts: &Facts) -> Option<String> {
    let findings = match &facts.probe {
        ProbeOutcome::Heard { findings, .. } => Some(findings),
        ProbeOutcome::Ended { findings, .. } => findings.as_ref(),
        _ => None,
    };
    let Some(f) = findings else {
        return spec.interface.clone();
    };
    if f.interface_address.is_some() {
        return spec.interface.clone();
    }
    let source = f.source.as_ref()?;
    f.interfaces
        .iter()
        .find(|(_, a)| a == source)
        .map(|(n, _)| n.clone())
}

/// The suggested file's text.
pub fn suggest(spec: &JobSpec, pool: &PoolOptions, facts: &Facts) -> String {
    let mut job = Vec::new();
    let parts = facts.partitions.as_deref().unwrap_or_default();
    let partition = match &spec.queue {
        Some(q) => parts.iter().find(|p| &p.name == q),
        None => parts.iter().find(|p| p.default),
    }
    .or_else(|| parts.iter().find(|p| p.default));
    if let Some(p) = partition {
        job.push(format!("queue = {}", quoted(&p.name)));
    }
    let default_account = facts
        .limits
        .as_ref()
        .ok()
        .and_then(|l| l.as_ref())
        .and_then(|l| l.default_account.clone());
    if let Some(a) = spec.account.clone().or(default_account) {
        job.push(format!("account = {}", quoted(&a)));
    }
    if let Some(q) = &spec.qos {
        job.push(format!("qos = {}", quoted(q)));
    }
    if let Some(i) = interface(spec, facts) {
        job.push(format!("interface = {}", quoted(&i)));
    }
    let max = partition.and_then(|p| p.max_time);
    let walltime = match max {
        Some(m) if spec.walltime.as_duration() > m => {
            Walltime::from_secs(m.as_secs()).unwrap_or(spec.walltime)
        }
        _ => spec.walltime,
    };
    job.push(format!("walltime = {}", quoted(&walltime.to_string())));
    let mut pool_lines = Vec::new();
    let address = facts.address.as_ref().ok();
    let network_failed = matches!(facts.probe, ProbeOutcome::Ended { .. });
    let listen = match (address, &facts.routed) {
        (Some(a), Some(r)) if network_failed && a.ip != r.ip => Some(r),
        (Some(a), _) => Some(a),
        (None, r) => r.as_ref(),
    };
    match listen.map(|a| (&a.interface, a.ip)) {
        Some((Some(i), _)) => pool_lines.push(format!("scheduler-interface = {}", quoted(i))),
        Some((None, ip)) => {
            pool_lines.push(format!("scheduler-host = {}", quoted(&ip.to_string())))
        }
        None => {}
    }
    if pool.slurm_api == Some(SlurmApi::Rest) {
        pool_lines.push("slurm-api = \"rest\"".into());
        if let Some(url) = &pool.slurmrestd {
            pool_lines.push(format!("slurmrestd = {}", quoted(&url.to_string())));
        }
    }
    format!(
        "# drover.toml as `drover doctor` suggests it for this site\n[job]\n{}\n\n[pool]\n{}\n",
        job.join("\n"),
        pool_lines.join("\n")
    )
}
