//! The seed's driver program on drover: a pool of workers on Slurm, the
//! inc/double/add graph over 1..5 run on it, the sum printed (50), and
//! every worker's Slurm job, node and log.
//!
//! With the local Slurm up (`slurm/local-cluster up`):
//!
//! ```sh
//! SLURM_CONF=/var/lib/drover-slurm/slurm.conf cargo run --example seed_driver
//! ```

use std::time::Duration;

use drover::cluster::{ClusterOptions, SlurmCluster};
use drover::config::JobOptions;
use drover::scheduler::Bind;
use drover::slurm::SlurmCli;
use drover::tasks::{Dep, TaskSpec};

fn shell(name: &str, command: String, deps: &[String]) -> TaskSpec {
    TaskSpec {
        name: Some(name.to_string()),
        argv: vec!["sh".into(), "-c".into(), command],
        cores: 1,
        deps: deps.iter().map(|d| Dep::Name(d.clone())).collect(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The drover binary the job scripts run sits next to this example.
    let drover = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("drover"))
        .filter(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("build the drover binary first: cargo build"))?;
    let spec = JobOptions::new()
        .cores(8u32)
        .interface("ib0")
        .job_name("seed")
        .drover_bin(drover)
        .build()?;
    // Defaults, with the DROVER_* environment applied (DROVER_POLL_INTERVAL...).
    let options = ClusterOptions::from_env(Bind::Interface(
        std::env::var("DROVER_SCHEDULER_INTERFACE").unwrap_or_else(|_| "drvbr0".into()),
    ))?;
    let cluster = SlurmCluster::new(spec, options, SlurmCli::new()).await?;
    cluster.scale(4);
    cluster
        .wait_for_workers(4, Duration::from_secs(120))
        .await?;

    // The seed's graph: inc(i), double(i), add(inc, double), then the sum.
    let mut tasks = Vec::new();
    let mut adds = Vec::new();
    for i in 1..=5 {
        let (inc, double, add) = (
            format!("inc-{i}"),
            format!("double-{i}"),
            format!("add-{i}"),
        );
        tasks.push(shell(&inc, format!("echo $(( {i} + 1 ))"), &[]));
        tasks.push(shell(&double, format!("echo $(( {i} * 2 ))"), &[]));
        tasks.push(shell(
            &add,
            format!("echo $(( {{{{{inc}}}}} + {{{{{double}}}}} ))"),
            &[inc.clone(), double.clone()],
        ));
        adds.push(add);
    }
    let sum = adds
        .iter()
        .map(|a| format!("{{{{{a}}}}}"))
        .collect::<Vec<_>>()
        .join(" + ");
    tasks.push(shell("total", format!("echo $(( {sum} ))"), &adds));

    let client = cluster.client();
    let ids = client.submit(&tasks).await?;
    let results = client
        .wait_tasks(Some(&ids), Duration::from_millis(50))
        .await?;
    let total = results
        .last()
        .and_then(|t| t.output.as_ref())
        .map(|o| o.stdout.trim().to_string());
    println!("total = {}", total.unwrap_or_default());

    for job in cluster.workers() {
        for w in &job.workers {
            println!(
                "worker {} ran as Slurm job {} on {} ({}); log {}",
                w.id,
                job.job,
                job.node.as_deref().unwrap_or("?"),
                w.address,
                job.log.display()
            );
        }
    }
    cluster.close().await?;
    Ok(())
}
