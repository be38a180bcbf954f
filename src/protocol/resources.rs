//! What workers offer and tasks ask for beyond cores and memory: GPUs,
//! named resources (a licence, a local scratch disk: anything a site counts)
//! and the group a worker belongs to. Their names and counts are checked by
//! `config::resource`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::config::resource::{
    check_name, check_resources, parse_gpus, parse_resource, ResourceError, MAX_GPUS, NAME_FORM,
};

/// What a worker offers besides its cores and memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Its GPUs, as `CUDA_VISIBLE_DEVICES` names them in its job (Slurm's
    /// allocation): each task holding GPUs gets its own of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
    /// Named resources and how many of each it has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, u64>,
    /// The pool group it belongs to, if the pool has groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Offer {
    /// Checks what a worker says it offers.
    pub fn check(&self) -> Result<(), ResourceError> {
        parse_gpus(&self.gpus.join(","))?;
        check_resources("resources", &self.resources)?;
        if let Some(g) = &self.group {
            check_name("group", g)?;
        }
        Ok(())
    }

    /// How many GPUs it offers.
    pub fn gpu_count(&self) -> u32 {
        u32::try_from(self.gpus.len()).unwrap_or(u32::MAX)
    }
}

/// The size of a pool's workers, per group: what the pool tells the
/// scheduler so that a task no worker could ever hold is refused when it
/// is submitted rather than left waiting for ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerShape {
    /// The group (`None`: a pool without groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Cores of one worker.
    pub cores: u32,
    /// Memory of one worker, in bytes.
    pub memory_bytes: u64,
    /// GPUs of one worker; `None` when the pool cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Named resources of one worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, u64>,
}

impl fmt::Display for WorkerShape {
    /// `gpu: 4 cores, 8.0 GiB, 2 GPUs, licence=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(g) = &self.group {
            write!(f, "{g}: ")?;
        }
        let memory = crate::config::Memory::from_bytes(self.memory_bytes).human();
        write!(f, "{} cores, {memory}", self.cores)?;
        match self.gpus {
            Some(0) => f.write_str(", no GPUs")?,
            Some(n) => write!(f, ", {n} GPUs")?,
            None => {}
        }
        for (name, amount) in &self.resources {
            write!(f, ", {name}={amount}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_prints_what_a_worker_has() {
        let mut s = WorkerShape {
            group: Some("gpu".into()),
            cores: 4,
            memory_bytes: 8 << 30,
            gpus: Some(2),
            resources: BTreeMap::new(),
        };
        s.resources.insert("licence".into(), 1);
        assert_eq!(s.to_string(), "gpu: 4 cores, 8GiB, 2 GPUs, licence=1");
        s.gpus = Some(0);
        s.group = None;
        s.resources.clear();
        assert_eq!(s.to_string(), "4 cores, 8GiB, no GPUs");
    }
}
