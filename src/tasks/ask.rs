//! What a task asks for (cores, memory, GPUs, named resources, group):
//! tasks with equal asks share a class in the ready queue, and a worker's
//! free room is matched against it.

use std::collections::BTreeMap;

use crate::protocol::TaskSpec;

/// What a task asks for; tasks with equal asks share a class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Class {
    pub(super) cores: u32,
    pub(super) memory: u64,
    pub(super) gpus: u32,
    pub(super) resources: BTreeMap<String, u64>,
    pub(super) group: Option<String>,
}

impl Class {
    pub(super) fn of(spec: &TaskSpec) -> Class {
        Class {
            cores: spec.cores,
            memory: spec.memory_bytes.unwrap_or(0),
            gpus: spec.gpus,
            resources: spec.resources.clone(),
            group: spec.group.clone(),
        }
    }
}
