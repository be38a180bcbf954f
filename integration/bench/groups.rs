//! Heterogeneous pools (`cargo bench --bench groups`; issue 18), side by
//! side in one run:
//!
//! 1. the scheduler's cost per task placement, in process (the task book
//!    alone, no HTTP): 100,000 one-core tasks on 6 workers of one group,
//!    against 100,000 tasks of three kinds (plain; 100 GiB of memory; one
//!    GPU in group `gpu`) on 2 workers of each of three groups (small,
//!    big-memory, GPU), whose placement matches memory, GPUs and groups;
//!    submitted interleaved, and in blocks by kind (which leaves workers
//!    that fit nothing polling past the others' tasks);
//! 2. what the adaptive groups' demand costs per round with 100,000 ready
//!    tasks, three groups against one;
//! 3. on the local Slurm (when it runs): a pool of two groups scaled to
//!    16 + 16 workers, against Slurm's floor for the same 32 jobs (one
//!    array until all run), taking turns at going first.
//!
//! Under `cargo test` it is a smoke run with small sizes.

mod common;

// Only the floor's one array is used here; the rest serves `scale_up`.
#[allow(dead_code)]
#[path = "peers/slurm_floor.rs"]
mod slurm_floor;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use drover::config::Memory;
use drover::protocol::{Completion, TaskOutput, TaskSpec, WorkerId, WorkerShape};
use drover::tasks::{Engine, Room};

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let tasks = if measuring { 100_000 } else { 3_000 };
    if !measuring {
        println!("smoke run (cargo test): small sizes, the figures below are not measurements");
    }
    let one = placement(tasks, Kinds::One);
    let mixed = placement(tasks, Kinds::Interleaved);
    let blocks = placement(tasks, Kinds::Blocks);
    println!(
        "placement cost per task: one group {one:.3} us, three groups interleaved {mixed:.3} us \
         ({:.2}x), three groups in blocks {blocks:.3} us ({:.2}x); target within 2x",
        mixed / one,
        blocks / one
    );
    let (d1, d3) = (demand(tasks, 1), demand(tasks, 3));
    println!(
        "demand per round with {tasks} ready tasks: one group {d1:.1} us, three groups {d3:.1} us ({:.2}x)",
        d3 / d1
    );
    scale_up(measuring);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kinds {
    One,
    Interleaved,
    Blocks,
}

fn gib(n: u64) -> u64 {
    n << 30
}

fn shapes() -> Vec<WorkerShape> {
    let shape = |group: &str, memory: u64, gpus: u32| WorkerShape {
        group: Some(group.into()),
        cores: 64,
        memory_bytes: gib(memory),
        gpus: Some(gpus),
        resources: BTreeMap::new(),
    };
    vec![
        shape("small", 64, 0),
        shape("big", 1024, 0),
        shape("gpu", 256, 8),
    ]
}

fn specs(n: usize, kinds: Kinds) -> Vec<TaskSpec> {
    let kind_of = |i: usize| match kinds {
        Kinds::One => 0,
        Kinds::Interleaved => i % 3,
        Kinds::Blocks => i * 3 / n,
    };
    (0..n)
        .map(|i| {
            let mut s = TaskSpec {
                argv: vec!["true".into()],
                ..TaskSpec::default()
            };
            match kind_of(i) {
                0 => {}
                1 => s.memory_bytes = Some(gib(100)),
                _ => {
                    s.gpus = 1;
                    s.group = Some("gpu".into());
                }
            }
            s
        })
        .collect()
}

/// Microseconds of placement per task: workers take what fits, report it
/// done at once, and ask again, round robin, until every task is done.
fn placement(n: usize, kinds: Kinds) -> f64 {
    let mut e = Engine::default();
    let shapes = shapes();
    if kinds != Kinds::One {
        e.set_shapes(shapes.clone());
    }
    let none = BTreeMap::new();
    let rooms: Vec<Room> = (0..6)
        .map(|i| match kinds {
            Kinds::One => Room::cores(64),
            _ => {
                let s = &shapes[i / 2];
                Room {
                    cores: s.cores,
                    memory: s.memory_bytes,
                    gpus: s.gpus.unwrap_or(0),
                    resources: &none,
                    group: s.group.as_deref(),
                }
            }
        })
        .collect();
    let start = Instant::now();
    e.submit(specs(n, kinds)).unwrap();
    let mut done = 0;
    while done < n {
        for (i, room) in rooms.iter().enumerate() {
            let w = WorkerId(i as u64 + 1);
            for a in e.assign(w, *room, None, 0) {
                let output = TaskOutput {
                    exit_code: Some(0),
                    ..Default::default()
                };
                e.complete(
                    w,
                    Completion {
                        task: a.task,
                        attempt: a.attempt,
                        output,
                    },
                );
                done += 1;
            }
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Microseconds one demand reckoning takes with `n` ready tasks.
fn demand(n: usize, groups: usize) -> f64 {
    let mut e = Engine::default();
    e.set_shapes(shapes().into_iter().take(groups).collect());
    let kinds = if groups == 1 {
        Kinds::One
    } else {
        Kinds::Interleaved
    };
    e.submit(specs(n, kinds)).unwrap();
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(e.demand(|_| None, |_| false));
    }
    start.elapsed().as_secs_f64() * 1e6 / rounds as f64
}

/// A pool of two groups scaled to 16 + 16 against one array of 32.
fn scale_up(measuring: bool) {
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| common::CONF.into());
    let up = std::process::Command::new("sinfo")
        .env("SLURM_CONF", &conf)
        .output();
    if !up.map(|o| o.status.success()).unwrap_or(false) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Slurm at SLURM_CONF={conf}"
        );
        println!("SKIPPED the scale-up: no Slurm at SLURM_CONF={conf}");
        return;
    }
    let (each, rounds) = if measuring { (16, 3) } else { (1, 1) };
    common::drained(&conf);
    let floor = slurm_floor::Floor::new(&conf);
    let dir = tempfile::tempdir().unwrap();
    let rt = common::runtime();
    let (mut floors, mut pools) = (vec![], vec![]);
    for round in 0..rounds {
        for turn in 0..2 {
            floor.settle();
            match (turn + round) % 2 {
                0 => floors.push(floor.array(2 * each)),
                _ => pools.push(rt.block_on(two_groups(each, &conf, dir.path()))),
            }
        }
        println!(
            "round {}: Slurm's floor (one array of {}) {:.2} s, two groups of {each} {:.2} s",
            round + 1,
            2 * each,
            floors[round],
            pools[round]
        );
    }
    let (f, p) = (common::median(floors), common::median(pools));
    println!(
        "scale-up to {each} + {each} workers in two groups: {p:.2} s against Slurm's floor {f:.2} s ({:.2}x)",
        p / f
    );
}

/// Seconds from the scale requests until all `2 * each` workers registered.
async fn two_groups(each: usize, conf: &str, dir: &std::path::Path) -> f64 {
    let group = |name: &str, memory: &str| drover::cluster::Group {
        name: name.into(),
        spec: drover::config::JobOptions::new()
            .job_name("bench-groups")
            .cores(1u32)
            .memory(memory.parse::<Memory>().unwrap())
            .interface("ib0")
            .log_directory(dir)
            .drover_bin(env!("CARGO_BIN_EXE_drover"))
            .build()
            .unwrap(),
    };
    let options = common::cluster_options(conf);
    let slurm = drover::slurm::SlurmCli::new().with_conf(conf);
    let groups = vec![group("a", "100MB"), group("b", "200MB")];
    let cluster = drover::cluster::SlurmCluster::with_groups(groups, options, slurm)
        .await
        .unwrap();
    let start = Instant::now();
    cluster.scale_group("a", each).unwrap();
    cluster.scale_group("b", each).unwrap();
    cluster
        .wait_for_workers(2 * each, Duration::from_secs(300))
        .await
        .unwrap();
    let up = start.elapsed().as_secs_f64();
    cluster.close().await.unwrap();
    up
}
