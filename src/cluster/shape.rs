//! The size of one of a pool's workers, from its job spec: what the pool
//! tells the scheduler, so that a task no worker could hold is refused at
//! submission instead of waiting for ever.

use crate::config::JobSpec;
use crate::protocol::WorkerShape;

/// One worker of `spec`: its job's cores, memory, GPUs and named resources
/// divided between the job's processes (as the agent divides them).
pub fn worker_shape(spec: &JobSpec, group: Option<&str>) -> WorkerShape {
    let processes = spec.processes.max(1);
    let resources = spec
        .worker_resources
        .clone()
        .into_iter()
        .map(|(k, v)| (k, v / u64::from(processes)))
        .filter(|(_, v)| *v > 0)
        .collect();
    WorkerShape {
        group: group.map(String::from),
        cores: (spec.cores / processes).max(1),
        memory_bytes: spec.memory.bytes().div_ceil(u64::from(processes)).max(1),
        gpus: match gpus_elsewhere(spec) {
            true => None,
            false => {
                gpus_per_job(spec.gres.as_deref(), spec.gpus.as_deref()).map(|n| n / processes)
            }
        },
        resources,
    }
}

/// Whether the job asks for GPUs in its own directives (`--gpus-per-node`,
/// `--gres` among the extra directives...): then how many is not known
/// here, and GPU tasks are not refused up front.
fn gpus_elsewhere(spec: &JobSpec) -> bool {
    spec.job_extra_directives
        .iter()
        .any(crate::config::Directive::asks_gpus)
}

/// GPUs one job gets from its `--gres` and `--gpus` values: `gpu:2`,
/// `gpu:a100:2`, `gpu` (one), `a100:2` (`--gpus`). `None` when a value
/// cannot be read: the scheduler then does not refuse GPU tasks up front.
fn gpus_per_job(gres: Option<&str>, gpus: Option<&str>) -> Option<u32> {
    let count = |parts: &[&str]| -> Option<u32> {
        match parts.last().map(|p| p.parse::<u32>()) {
            Some(Ok(n)) => Some(n),
            // `gpu` or `gpu:a100`: a type and no count is one.
            Some(Err(_)) if parts.len() <= 2 => Some(1),
            _ => None,
        }
    };
    let mut total = 0u32;
    for item in gres.into_iter().flat_map(|g| g.split(',')) {
        let parts: Vec<&str> = item.trim().split(':').collect();
        if parts[0] == "gpu" {
            total = total.saturating_add(count(&parts)?);
        }
    }
    if let Some(g) = gpus {
        let parts: Vec<&str> = g.trim().split(':').collect();
        let n = parts.last()?.parse::<u32>().ok()?;
        total = total.saturating_add(n);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn gpus_are_read_from_gres_and_gpus() {
        assert_eq!(gpus_per_job(None, None), Some(0));
        assert_eq!(gpus_per_job(Some("gpu:2"), None), Some(2));
        assert_eq!(gpus_per_job(Some("gpu:a100:4,tmpdisk:100"), None), Some(4));
        assert_eq!(gpus_per_job(Some("gpu"), None), Some(1));
        assert_eq!(gpus_per_job(Some("tmpdisk:100"), None), Some(0));
        assert_eq!(gpus_per_job(None, Some("a100:3")), Some(3));
        assert_eq!(gpus_per_job(None, Some("lots")), None);
        assert_eq!(gpus_per_job(Some("gpu:a100:many"), None), None);
    }

    #[test]
    fn a_worker_is_its_share_of_the_job() {
        let spec = JobSpec::builder()
            .cores(8u32)
            .processes(2u32)
            .memory("4GiB".parse::<crate::config::Memory>().unwrap())
            .gres("gpu:2")
            .worker_resources(vec!["licence=4".to_string(), "disk=1".to_string()])
            .build()
            .unwrap();
        let s = worker_shape(&spec, Some("gpu"));
        assert_eq!((s.cores, s.memory_bytes, s.gpus), (4, 2 << 30, Some(1)));
        assert_eq!(s.resources, BTreeMap::from([("licence".to_string(), 2)]));
        assert_eq!(s.group.as_deref(), Some("gpu"));
        let elsewhere = JobSpec::builder()
            .job_extra_directives(vec!["--gpus-per-node=4".to_string()])
            .build()
            .unwrap();
        assert_eq!(
            worker_shape(&elsewhere, None).gpus,
            None,
            "not known: not refused"
        );
    }
}
