//! What a pool cost, on the real local Slurm: a pool of two groups, one
//! on the `small` partition (TRESBillingWeights CPU=2.0,Mem=1.0G) and one
//! on `batch` (no weights), runs a known amount of work; its report's
//! allocated core-seconds and billing units agree with what the test
//! reads from Slurm's accounting itself, its busy core-seconds with the
//! tasks' own times, and the figures hold across a restart from the
//! journal. Over slurmrestd (whose accounting drover does not read) the
//! report says it counts the workers' lifetimes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{exclusive, local_slurm, log_dir, slurm_cmd, test_cluster_options, test_job};
use drover::cluster::{Group, SlurmCluster};
use drover::config::Memory;
use drover::protocol::{Report, ReportSource};
use drover::tasks::{TaskSpec, TaskState};

/// How far apart two figures may be, as a fraction of the expected one.
const TOLERANCE: f64 = 0.05;

fn near(what: &str, got: f64, want: f64) {
    assert!(
        want > 0.0 && ((got - want) / want).abs() <= TOLERANCE,
        "{what}: reported {got:.2}, expected {want:.2} (within 5 %)"
    );
}

/// Each group's core-seconds and billing units as Slurm's accounting
/// records its jobs (by their names), once it has each of the `submitted`
/// jobs with its end; the billing by the partition's weights, computed
/// here.
async fn from_sacct(
    names: &BTreeMap<String, String>,
    submitted: &BTreeMap<String, usize>,
) -> BTreeMap<String, (f64, f64, usize)> {
    let mut out = BTreeMap::new();
    for (group, name) in names {
        let lines =
            common::poll_until("sacct to record every end", Duration::from_secs(30), || {
                let text = slurm_cmd(
                    "sacct",
                    &[
                        "--allocations",
                        "--noheader",
                        "--parsable2",
                        "--format=ElapsedRaw,AllocCPUS,AllocTRES,End",
                        &format!("--name={name}"),
                        "--starttime=now-1hour",
                    ],
                );
                let lines: Vec<String> = text.lines().map(String::from).collect();
                let ended = lines.len() == submitted[group]
                    && lines.iter().all(|l| !l.ends_with("|Unknown"));
                ended.then_some(lines)
            })
            .await;
        let (mut core_s, mut billing, mut jobs) = (0.0, 0.0, 0);
        for line in &lines {
            let f: Vec<&str> = line.split('|').collect();
            let elapsed: f64 = f[0].parse().unwrap();
            let cpus: f64 = f[1].parse().unwrap();
            let mem_gib = f[2]
                .split(',')
                .find_map(|kv| kv.strip_prefix("mem="))
                .map(|m| m.parse::<Memory>().unwrap().bytes() as f64 / (1u64 << 30) as f64)
                .unwrap();
            core_s += elapsed * cpus;
            // small: 2 per CPU and 1 per GiB; batch: its CPUs.
            let rate = match group.as_str() {
                "billed" => 2.0 * cpus + mem_gib,
                _ => cpus,
            };
            billing += elapsed * rate / 3600.0;
            jobs += 1;
        }
        out.insert(group.clone(), (core_s, billing, jobs));
    }
    out
}

/// The pool's report once it has read its allocations from accounting
/// (over slurmrestd, which drover does not read them from: at once).
async fn report_read(cluster: &SlurmCluster, whose: &str) -> Report {
    let what = format!("{whose} to read its allocations");
    common::poll_until(&what, Duration::from_secs(30), || {
        let r = cluster.report();
        (r.source == ReportSource::SlurmAccounting || common::over_rest()).then_some(r)
    })
    .await
}

fn task(group: &str, i: u32) -> TaskSpec {
    TaskSpec {
        name: Some(format!("{group}-{i}")),
        argv: vec!["sleep".into(), "4".into()],
        cores: 1,
        group: Some(group.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_cost_agrees_with_slurms_accounting_and_survives_a_restart() {
    let Some(slurm) = local_slurm("a_pools_cost_agrees_with_slurms_accounting") else {
        return;
    };
    let _serial = exclusive().await;
    let logs = log_dir();
    let one_gib = || "1GiB".parse::<Memory>().unwrap();
    let groups = vec![
        Group {
            name: "billed".into(),
            spec: test_job("drover-cost-billed", 1, logs.path())
                .memory(one_gib())
                .queue("small")
                .build()
                .unwrap(),
        },
        Group {
            name: "plain".into(),
            spec: test_job("drover-cost-plain", 1, logs.path())
                .memory(one_gib())
                .build()
                .unwrap(),
        },
    ];
    let mut options = test_cluster_options();
    options.journal = Some(logs.path().join("pool.journal"));
    options.accounting_interval = Duration::from_secs(1);
    let cluster = SlurmCluster::with_groups(groups.clone(), options.clone(), slurm.clone())
        .await
        .unwrap();
    let names: BTreeMap<String, String> = cluster
        .status()
        .groups
        .iter()
        .map(|g| (g.group.clone().unwrap(), g.job_name.clone()))
        .collect();
    cluster.scale_group("billed", 1).unwrap();
    cluster.scale_group("plain", 1).unwrap();
    cluster
        .wait_for_workers(2, Duration::from_secs(60))
        .await
        .unwrap();
    // A known amount of work: 4 s on one core, twice in each group.
    let client = cluster.client();
    let specs: Vec<TaskSpec> = ["billed", "plain"]
        .iter()
        .flat_map(|g| [task(g, 0), task(g, 1)])
        .collect();
    let ids = client.submit(&specs).await.unwrap();
    let done = client
        .wait_tasks(Some(&ids), Duration::from_millis(50))
        .await
        .unwrap();
    let mut ran: BTreeMap<String, f64> = BTreeMap::new();
    for t in &done {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        let group = t.name.as_deref().unwrap().split('-').next().unwrap();
        *ran.entry(group.into()).or_default() += t.output.as_ref().unwrap().millis as f64 / 1000.0;
    }
    let over_rest = common::over_rest();
    let before = report_read(&cluster, "the pool").await;
    for (group, seconds) in &ran {
        near(
            &format!("{group}: busy core-seconds"),
            before.groups[group].busy_core_seconds,
            *seconds,
        );
    }
    assert_eq!(before.total.workers, 2, "{before:?}");

    // The pool's scheduler stops and a successor continues on the journal.
    let submitted_before: BTreeMap<String, usize> = (cluster.status().groups.iter())
        .map(|g| (g.group.clone().unwrap(), g.submitted as usize))
        .collect();
    cluster.hand_over();
    drop(cluster);
    let cluster = SlurmCluster::with_groups(groups, options, slurm.clone())
        .await
        .unwrap();
    // Its first read follows its first round.
    let after = report_read(&cluster, "the successor").await;
    for (group, seconds) in &ran {
        let g = &after.groups[group];
        near(
            &format!("{group}: busy core-seconds after the restart"),
            g.busy_core_seconds,
            *seconds,
        );
        assert!(
            g.allocated_core_seconds >= before.groups[group].allocated_core_seconds,
            "{after:?}"
        );
    }
    assert_eq!(
        (after.total.workers, after.total.jobs),
        (before.total.workers, before.total.jobs)
    );
    // The jobs each group submitted, before the restart and after.
    let mut submitted = submitted_before;
    for g in &cluster.status().groups {
        *submitted.entry(g.group.clone().unwrap()).or_default() += g.submitted as usize;
    }
    // Closed soon after the restart (over slurmrestd, before its first
    // round: its books do not know its jobs yet), the successor still
    // leaves no job behind.
    cluster.close().await.unwrap();
    for name in names.values() {
        assert_eq!(common::jobs_named(name), Vec::<String>::new(), "{name}");
    }
    let last = cluster.report();
    if over_rest {
        assert_eq!(last.source, ReportSource::WorkerLifetimes, "{last:?}");
        return;
    }
    assert_eq!(last.source, ReportSource::SlurmAccounting);
    let slurms = from_sacct(&names, &submitted).await;
    for (group, (core_s, billing, jobs)) in &slurms {
        let g = &last.groups[group];
        assert_eq!(g.jobs, *jobs as u64, "{group}: {last:?}");
        near(
            &format!("{group}: allocated core-seconds"),
            g.allocated_core_seconds,
            *core_s,
        );
        near(
            &format!("{group}: billing units"),
            g.billing_units,
            *billing,
        );
        assert_eq!(g.energy_joules, None, "this machine measures no energy");
        let idle = (1.0 - g.busy_core_seconds / g.allocated_core_seconds).max(0.0);
        assert!((g.idle_fraction - idle).abs() < 1e-9, "{g:?}");
    }
    // The weights bill small's jobs 3 per core (2 + 1 GiB): thrice batch's.
    let per_core = |g: &str| last.groups[g].billing_units / last.groups[g].allocated_core_seconds;
    near(
        "small's billing per core-second against batch's",
        per_core("billed"),
        3.0 * per_core("plain"),
    );
}
