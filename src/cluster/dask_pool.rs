//! The Dask side of a `dask` pool: its Dask scheduler (started here, or
//! one the user runs), named in drover's scheduler file where the workers
//! find it, and what it last said: who is registered, how many workers
//! Dask wants, how busy each one is.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::{ClusterError, ClusterOptions};
use crate::config::JobSpec;
use crate::dask::{DaskApi, DaskBind, DaskScheduler, DaskWorker};
use crate::protocol::{DaskEndpoint, DaskStatus};
use crate::scheduler::{Bind, Scheduler};

/// A `dask` pool's Dask scheduler and what it last said.
pub(crate) struct DaskPool {
    pub endpoint: DaskEndpoint,
    api: DaskApi,
    /// The scheduler process, when this pool started it.
    process: tokio::sync::Mutex<Option<DaskScheduler>>,
    /// Dask workers at the last look.
    seen: Mutex<Option<Vec<DaskWorker>>>,
    /// What Dask's adaptive target was at the last look (adaptive pools).
    desired: Mutex<Option<usize>>,
}

/// The Dask scheduler's TLS files: the drover cluster's own certificate
/// and key, written beside the Dask scheduler's file, unless the user
/// secures Dask themselves (`--tls-*` among its arguments) or drover runs
/// without TLS.
fn dask_tls(
    options: &ClusterOptions,
    scheduler: &Scheduler,
    dir: &std::path::Path,
) -> Result<Option<crate::protocol::DaskTls>, ClusterError> {
    // Dask's scheduler takes its TLS files as these options.
    let own = crate::config::args::gives_any(
        &options.dask_scheduler.extra,
        &["--tls-ca-file", "--tls-cert", "--tls-key"],
    );
    let Some(cert) = scheduler.certificate().filter(|_| !own) else {
        return Ok(None);
    };
    let (cert, key) = cert.write_pem(dir).map_err(|cause| ClusterError::Io {
        what: format!("writing the Dask TLS files in {}", dir.display()),
        cause,
    })?;
    Ok(Some(crate::protocol::DaskTls { cert, key }))
}

impl DaskPool {
    /// Starts (or attaches to) the pool's Dask scheduler and names it in
    /// drover's scheduler, whose file the workers read.
    pub async fn start(
        spec: &JobSpec,
        options: &ClusterOptions,
        scheduler: &Scheduler,
    ) -> Result<DaskPool, ClusterError> {
        let (endpoint, process) = match &options.dask_scheduler_file {
            Some(file) => (crate::dask::read_scheduler_file(file)?, None),
            None => {
                let bind = match &options.scheduler.bind {
                    Bind::Interface(i) => DaskBind::Interface(i.clone()),
                    Bind::Host(ip) => DaskBind::Host(*ip),
                    Bind::Auto => DaskBind::Host(scheduler.local_addr().ip()),
                };
                // Private: Python imports drover's routes module from here,
                // so no other user may write in it.
                let dir = crate::private_fs::PrivateDir::ensure(
                    &spec.log_directory.join(format!("{}.dask", spec.job_name)),
                    crate::private_fs::Access::Private,
                )?;
                let tls = dask_tls(options, scheduler, dir.path())?;
                let process = DaskScheduler::start(
                    &spec.python,
                    &bind,
                    &options.dask_scheduler,
                    tls.as_ref(),
                    &dir,
                    options.dask_start_timeout,
                )
                .await?;
                (process.endpoint().clone(), Some(process))
            }
        };
        scheduler.set_dask(endpoint.clone());
        Ok(DaskPool {
            api: DaskApi::new(&endpoint),
            endpoint,
            process: tokio::sync::Mutex::new(process),
            seen: Mutex::new(None),
            desired: Mutex::new(None),
        })
    }

    /// Asks the Dask scheduler who is registered; remembers the answer,
    /// and hands each worker's busy time (Dask's own) to `scheduler`.
    pub async fn refresh(&self, scheduler: &Scheduler) -> Option<usize> {
        let answer = match self.api.workers_busy().await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Dask scheduler's workers");
                None
            }
        };
        let n = answer.as_ref().map(|a| a.workers.len());
        if let Some(a) = &answer {
            scheduler.set_dask_busy(&a.busy_seconds);
        }
        *self.seen.lock() = answer.map(|a| a.workers);
        n
    }

    /// For adaptive pools: asks Dask how many workers it wants and how busy
    /// each one is, and hands the latter to the scheduler, so idleness
    /// means the same for Dask workers as for native ones.
    pub async fn refresh_adaptive(&self, scheduler: &Scheduler) {
        let desired = match self.api.desired_workers().await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read Dask's adaptive target");
                None
            }
        };
        *self.desired.lock() = desired;
        let busy: HashMap<String, u32> = match self.api.activity().await {
            Ok(activity) => activity.into_iter().collect(),
            Err(e) => {
                // Unknown load counts as busy: an adaptive pool then does
                // not shrink, rather than retire workers in mid-task.
                tracing::warn!(error = %e, "cannot read the Dask workers' load; holding them as busy");
                self.seen
                    .lock()
                    .iter()
                    .flatten()
                    .map(|w| (w.name.clone(), 1))
                    .collect()
            }
        };
        scheduler.set_dask_activity(&busy);
    }

    /// How many workers Dask wanted at the last look.
    pub fn desired(&self) -> Option<usize> {
        *self.desired.lock()
    }

    /// How many workers Dask saw at the last look.
    pub fn seen(&self) -> Option<usize> {
        self.seen.lock().as_ref().map(Vec::len)
    }

    /// The Dask scheduler in a status report.
    pub fn status(&self) -> DaskStatus {
        DaskStatus {
            address: self.endpoint.address.clone(),
            http: self.endpoint.http.clone(),
            scheduler_file: self.endpoint.scheduler_file.clone(),
            workers: self.seen(),
        }
    }

    /// Stops the Dask scheduler this pool started, if it did.
    pub async fn stop(&self) {
        if let Some(mut p) = self.process.lock().await.take() {
            p.stop().await;
        }
    }
}
