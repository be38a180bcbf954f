//! Workers simulated in-process over the real protocol, for load tests and
//! benchmarks that need thousands of them.

use drover::protocol::{RegisterRequest, SlurmPlacement};

/// The registration of made-up worker number `i`.
pub fn worker(i: usize) -> RegisterRequest {
    RegisterRequest {
        name: format!("sim-{i}"),
        slurm: SlurmPlacement {
            job_id: Some(1_000_000 + i as u64),
            ..Default::default()
        },
        hostname: format!("node{:03}", i % 500),
        address: format!("10.1.{}.{}", i / 250 % 256, i % 250),
        cores: 16,
        memory_bytes: 64 << 30,
        allocation_end: Some(2_000_000_000),
        drain_at_ms: None,
        pid: 100_000 + i as u32,
        kind: Default::default(),
        dask_name: None,
        offer: Default::default(),
    }
}
