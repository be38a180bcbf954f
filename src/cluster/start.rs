//! Starting what a cluster is made of: one scheduler, and a pool per group
//! (one pool for a cluster without groups), each with the names its jobs
//! carry, its Dask side, its script and its books.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::books::Books;
use super::dask_pool::DaskPool;
use super::pool::Pool;
use super::sizing::Sizing;
use super::{ClusterError, ClusterOptions};
use crate::config::{Directive, JobSpec, SpecError, ValueError, WorkerKind};
use crate::protocol::check_name;
use crate::scheduler::Scheduler;
use crate::slurm::{SchedulerConfig, Slurm};

/// One group of a pool with groups: its name and what its jobs are. Each
/// group is sized on its own (`scale_group`, `adapt_group`).
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name: tasks ask for it (`--group`), its workers carry it.
    pub name: String,
    /// What each of its jobs is.
    pub spec: JobSpec,
}

/// What every pool of a cluster shares.
struct Shared {
    scheduler: Arc<Scheduler>,
    scheduler_file: PathBuf,
    slurm: Arc<dyn Slurm>,
    slurm_config: SchedulerConfig,
    options: ClusterOptions,
    rounds: Arc<watch::Sender<u64>>,
    wake: Arc<Notify>,
}

/// Starts the scheduler and one pool per entry of `groups` (`None`: the
/// pool of a cluster without groups).
pub(super) async fn start(
    mut groups: Vec<(Option<String>, JobSpec)>,
    mut options: ClusterOptions,
    slurm: Arc<dyn Slurm>,
) -> Result<Vec<Pool>, ClusterError> {
    check_groups(&groups)?;
    let grace = crate::config::Timeout::new(options.reattach_grace);
    if let Some(journal) = &options.journal {
        if groups.iter().any(|(_, s)| s.kind == WorkerKind::Dask) {
            return Err(SpecError::invalid(
                "journal",
                ValueError::new(
                    &journal.display().to_string(),
                    "a Dask pool's tasks live in Dask's own scheduler, which a journal cannot bring back",
                    "a journal only for native pools (kind = \"native\")",
                ),
            )
            .into());
        }
        options.scheduler.journal = Some(journal.clone());
        // Workers wait for a scheduler as long as their jobs are kept for
        // one to come back.
        for (_, spec) in &mut groups {
            spec.death_timeout = spec.death_timeout.max(grace);
        }
    }
    let first = &groups[0].1;
    // What Slurm says of its scheduler is asked while the scheduler starts.
    let (slurm_config, scheduler) = tokio::join!(slurm.scheduler_config(), async {
        options.scheduler.bind = super::network::resolve(
            &options.scheduler.bind,
            slurm.as_ref(),
            first.queue.as_deref(),
        )
        .await;
        Scheduler::start(options.scheduler.clone()).await
    });
    let scheduler = Arc::new(scheduler?);
    let slurm_config = slurm_config.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read Slurm's scheduler settings; pacing by Slurm's defaults");
        Default::default()
    });
    tracing::debug!(?slurm_config, "Slurm's scheduler settings");
    let id = scheduler.cluster_id().clone();
    let scheduler_file = options.scheduler_file.clone().unwrap_or_else(|| {
        first
            .log_directory
            .join(format!("{}-{id}.scheduler.json", first.job_name))
    });
    let shared = Shared {
        scheduler,
        scheduler_file,
        slurm,
        slurm_config,
        options,
        rounds: Arc::new(watch::channel(0).0),
        wake: Arc::new(Notify::new()),
    };
    let mut pools = Vec::with_capacity(groups.len());
    let mut dask = None;
    for (group, spec) in groups {
        let p = pool(&shared, group, spec, &mut dask).await?;
        pools.push(p);
    }
    if shared.options.check_jobs {
        check_jobs(&pools).await?;
    }
    shared
        .scheduler
        .write_scheduler_file(&shared.scheduler_file)?;
    Ok(pools)
}

/// Asks Slurm whether it would take each group's job (see
/// `Pool::check_job`), so that an account, QOS or partition it refuses
/// fails the start with Slurm's words before a single job is submitted.
async fn check_jobs(pools: &[Pool]) -> Result<(), ClusterError> {
    let verdicts = futures_util::future::join_all(pools.iter().map(Pool::check_job)).await;
    verdicts.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// Group names are names (tasks and workers carry them), and unique.
fn check_groups(groups: &[(Option<String>, JobSpec)]) -> Result<(), ClusterError> {
    let invalid = |name: &str, reason: &str, accepted: &str| -> ClusterError {
        SpecError::invalid("group", ValueError::new(name, reason, accepted)).into()
    };
    if groups.is_empty() {
        return Err(invalid(
            "",
            "a pool needs at least one group",
            "one or more groups",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, spec) in groups {
        let Some(name) = name else {
            if groups.len() > 1 {
                return Err(invalid(
                    "",
                    "a group has no name",
                    crate::protocol::NAME_FORM,
                ));
            }
            continue;
        };
        check_name("group", name)
            .map_err(|e| invalid(name, "it is not a group name", &e.accepted))?;
        if !seen.insert(name.as_str()) {
            return Err(invalid(
                name,
                "two groups have this name",
                "a different name for each group",
            ));
        }
        if spec.kind != groups[0].1.kind {
            return Err(invalid(
                name,
                "its kind differs from the first group's: one pool runs either drover tasks or Dask workers",
                "the same kind (native or dask) in every group",
            ));
        }
    }
    Ok(())
}

/// One pool: its jobs named after the cluster (and its group), its script
/// rendered, its books opened. A Dask pool's groups share one Dask
/// scheduler (`dask`, started with the first group's settings); each
/// group's Dask workers carry its GPUs and named resources as Dask
/// resources.
async fn pool(
    shared: &Shared,
    group: Option<String>,
    mut spec: JobSpec,
    dask: &mut Option<Arc<DaskPool>>,
) -> Result<Pool, ClusterError> {
    let id = shared.scheduler.cluster_id().clone();
    // Every job carries the cluster id (and its group), in its name and
    // its comment; its workers say their group when they register.
    spec.job_name = match &group {
        None => format!("{}-{id}", spec.job_name),
        Some(g) => format!("{}-{g}-{id}", spec.job_name),
    };
    let comment = match &group {
        None => format!("drover:{id}"),
        Some(g) => format!("drover:{id}:{g}"),
    };
    spec.job_extra_directives
        .push(Directive::new("--comment", comment));
    spec.group = group.clone();
    spec.scheduler_file = Some(shared.scheduler_file.clone());
    spec.ensure_log_directory()?;
    let shape = super::shape::worker_shape(&spec, group.as_deref());
    if spec.kind == WorkerKind::Dask {
        if dask.is_none() {
            let started = DaskPool::start(&spec, &shared.options, &shared.scheduler).await?;
            *dask = Some(Arc::new(started));
        }
        if let Some(resources) = dask_resources(&spec, &shape) {
            spec.worker_extra_args
                .extend(["--resources".to_string(), resources]);
        }
    }
    let dask = dask.clone();
    let script = crate::script::render(&spec)?;
    let options = shared.options.clone();
    let books = Books::new(
        options.max_startup_failures,
        options.retry_backoff,
        options.poll_interval * 2 + Duration::from_secs(5),
    )
    .for_site(options.limits, options.replace_lead, shared.slurm_config)
    .with_held_jobs(options.held_jobs);
    Ok(Pool {
        books: parking_lot::Mutex::new(books),
        group,
        sizing: parking_lot::Mutex::new(Sizing::new(&spec, script, shape, Instant::now())),
        spec,
        slurm: shared.slurm.clone(),
        scheduler: shared.scheduler.clone(),
        scheduler_file: shared.scheduler_file.clone(),
        options,
        wake: shared.wake.clone(),
        rounds: shared.rounds.clone(),
        close_requested: Notify::new(),
        arrays_refused: AtomicBool::new(false),
        accounting_failing: AtomicBool::new(false),
        // A pool back from its journal had its jobs taken already.
        checked: AtomicBool::new(shared.scheduler.restored()),
        adapt: parking_lot::Mutex::new(None),
        dask,
    })
}

/// A Dask worker's resources, as `dask worker --resources` takes them:
/// `GPU=N` for its GPUs and its named resources; `None` when it has none,
/// or when the job's own arguments already say (`--resources`).
fn dask_resources(spec: &JobSpec, shape: &crate::protocol::WorkerShape) -> Option<String> {
    if crate::config::args::gives_any(&spec.worker_extra_args, &["--resources"]) {
        return None;
    }
    let mut items: Vec<String> = Vec::new();
    if let Some(n) = shape.gpus.filter(|n| *n > 0) {
        items.push(format!("GPU={n}"));
    }
    items.extend(shape.resources.iter().map(|(k, v)| format!("{k}={v}")));
    (!items.is_empty()).then(|| items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: WorkerKind) -> JobSpec {
        JobSpec::builder().kind(kind).build().unwrap()
    }

    #[test]
    fn groups_need_distinct_names_and_one_kind() {
        let named = |n: &str| (Some(n.to_string()), spec(WorkerKind::Native));
        assert!(check_groups(&[named("cpu"), named("gpu")]).is_ok());
        assert!(
            check_groups(&[(None, spec(WorkerKind::Native))]).is_ok(),
            "a pool without groups"
        );
        let e = check_groups(&[named("cpu"), named("cpu")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two groups have this name"), "{e}");
        let e = check_groups(&[named("cpu"), named("a b")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a group name") && e.contains("starting with a letter"),
            "{e}"
        );
        let e = check_groups(&[named("cpu"), (Some("d".into()), spec(WorkerKind::Dask))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("its kind differs"), "{e}");
        let e = check_groups(&[named("cpu"), (None, spec(WorkerKind::Native))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a group has no name"), "{e}");
        assert!(check_groups(&[]).is_err());
    }

    #[test]
    fn dask_workers_get_their_gpus_and_resources_as_dask_resources() {
        let mut s = JobSpec::builder()
            .kind(WorkerKind::Dask)
            .gres("gpu:2")
            .worker_resources(vec!["licence=1".to_string()])
            .build()
            .unwrap();
        let shape = super::super::shape::worker_shape(&s, Some("gpu"));
        assert_eq!(
            dask_resources(&s, &shape).as_deref(),
            Some("GPU=2 licence=1")
        );
        s.worker_extra_args = vec!["--resources".into(), "MINE=1".into()];
        assert_eq!(dask_resources(&s, &shape), None, "the user's own wins");
        let plain = spec(WorkerKind::Dask);
        let shape = super::super::shape::worker_shape(&plain, None);
        assert_eq!(dask_resources(&plain, &shape), None);
    }
}
