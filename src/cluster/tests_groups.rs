//! A cluster with groups against the fake Slurm, time under test control:
//! each group its own jobs and size, tasks that name a group or need a big
//! worker counting for the right group's adaptive size, and a stalled
//! group's work spilling to the next one. What Slurm itself does with
//! groups is shown by `integration/slurm_groups.rs`.

use std::time::Duration;

use super::{ClusterOptions, Group, SlurmCluster};
use crate::client::ClientError;
use crate::config::{JobOptions, Memory};
use crate::protocol::TaskSpec;
use crate::scheduler::Bind;
use crate::slurm::fake::FakeSlurm;

fn options() -> ClusterOptions {
    let mut o = ClusterOptions::new(Bind::Host(std::net::Ipv4Addr::LOCALHOST.into()));
    o.scheduler.heartbeat_interval = Duration::from_secs(3600);
    o.poll_interval = Duration::from_secs(1);
    o.reaper = false;
    o.handle_signals = false;
    o.cooldown = Duration::from_secs(1);
    o
}

fn group(name: &str, cores: u32, memory: &str, dir: &std::path::Path) -> Group {
    let spec = JobOptions::new()
        .job_name("t")
        .cores(cores)
        .memory(memory.parse::<Memory>().unwrap())
        .log_directory(dir)
        .drover_bin("/usr/bin/drover")
        .build()
        .unwrap();
    Group {
        name: name.into(),
        spec,
    }
}

async fn start(fake: &FakeSlurm, o: ClusterOptions) -> (SlurmCluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let groups = vec![
        group("cpu", 2, "2GiB", dir.path()),
        group("big", 4, "16GiB", dir.path()),
    ];
    let cluster = SlurmCluster::with_groups(groups, o, fake.clone())
        .await
        .unwrap();
    (cluster, dir)
}

async fn until(cluster: &SlurmCluster, what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..120 {
        if ok() {
            return;
        }
        cluster.rounds(1).await;
    }
    panic!(
        "{what}: not after 120 rounds; status: {:#?}",
        cluster.status()
    );
}

fn targets(cluster: &SlurmCluster) -> Vec<(String, usize)> {
    let s = cluster.status();
    s.groups
        .iter()
        .map(|g| (g.group.clone().unwrap(), g.target_jobs))
        .collect()
}

fn tasks(n: usize, memory: Option<&str>) -> Vec<TaskSpec> {
    (0..n)
        .map(|_| TaskSpec {
            argv: vec!["true".into()],
            memory_bytes: memory.map(|m| m.parse::<Memory>().unwrap().bytes()),
            ..TaskSpec::default()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_group_has_its_own_jobs_and_size() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    assert_eq!(cluster.group_names(), ["cpu", "big"]);
    cluster.scale_group("cpu", 2).unwrap();
    cluster.scale_group("big", 1).unwrap();
    until(&cluster, "3 jobs", || fake.active().len() == 3).await;
    let status = cluster.status();
    assert_eq!(targets(&cluster), [("cpu".into(), 2), ("big".into(), 1)]);
    assert_eq!(status.target_jobs, 3, "the cluster sums its groups");
    let big = &status.groups[1];
    assert!(big.job_name.contains("-big-"), "{}", big.job_name);
    assert!(big.jobs.iter().all(|j| j.group.as_deref() == Some("big")));
    assert_eq!(status.jobs.len(), 3);
    let e = cluster.scale_group("gpu", 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "group: `gpu` is not one of this cluster's groups; accepted: cpu, big"
    );
    // Through the control API, a group must be named.
    let client = cluster.client();
    match client.scale(1, None).await {
        Err(ClientError::BadRequest(why)) => {
            assert!(why.contains("name one (--group NAME)"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    client.scale(0, Some("cpu")).await.unwrap();
    until(&cluster, "cpu scaled down", || targets(&cluster)[0].1 == 0).await;
}

#[tokio::test(start_paused = true)]
async fn tasks_count_for_the_first_group_that_holds_them() {
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.adapt_group("cpu", 0, 4).unwrap();
    cluster.adapt_group("big", 0, 2).unwrap();
    let client = cluster.client();
    // Ten one-core tasks fit the small workers: only cpu grows.
    client.submit(&tasks(10, None)).await.unwrap();
    until(&cluster, "cpu grows", || targets(&cluster)[0].1 == 4).await;
    assert_eq!(targets(&cluster)[1].1, 0, "big is not needed for them");
    // Two 6 GiB tasks fit only the big workers: 12 GiB is one 16 GiB worker.
    client.submit(&tasks(2, Some("6GiB"))).await.unwrap();
    until(&cluster, "big grows", || targets(&cluster)[1].1 == 1).await;
    // A task naming no group of the pool is refused, saying which there are.
    let mut stray = tasks(1, None);
    stray[0].group = Some("gpu".into());
    match client.submit(&stray).await {
        Err(ClientError::BadRequest(why)) => {
            assert!(
                why.contains("group gpu, but the pool's groups are cpu, big"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_groups_work_spills_to_the_next_group() {
    let fake = FakeSlurm::new();
    let mut o = options();
    o.spill_after = Duration::from_secs(30);
    let (cluster, _dir) = start(&fake, o).await;
    cluster.adapt_group("cpu", 0, 4).unwrap();
    cluster.adapt_group("big", 0, 2).unwrap();
    cluster.client().submit(&tasks(10, None)).await.unwrap();
    until(&cluster, "cpu grows", || targets(&cluster)[0].1 == 4).await;
    // The cpu jobs stay pending (the fake never starts them): after 30 s
    // the small tasks count for big as well.
    until(&cluster, "big takes the work", || {
        targets(&cluster)[1].1 == 2
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn one_listing_serves_every_group_in_a_round() {
    use crate::slurm::Slurm;
    let fake = FakeSlurm::new();
    let (cluster, _dir) = start(&fake, options()).await;
    cluster.scale_group("cpu", 1).unwrap();
    cluster.scale_group("big", 1).unwrap();
    until(&cluster, "2 jobs", || fake.active().len() == 2).await;
    cluster.rounds(4).await;
    let before = fake.calls();
    // Ten group rounds are five rounds of the cluster: five squeue calls.
    cluster.rounds(10).await;
    let calls = fake.calls() - before;
    assert!(
        (5..=6).contains(&calls),
        "{calls} Slurm calls for 5 rounds of 2 groups"
    );
}
