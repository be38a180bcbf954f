//! Submitting worker jobs: one job array when the site allows it, else one
//! job at a time; kept off nodes that just lost their workers, and again
//! anywhere should Slurm refuse that.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::pool::Pool;
use crate::slurm::{JobRef, Refusal, SlurmError, SubmitOptions};
use crate::worker::JOB_INDEX_BASE;

impl Pool {
    /// Submits `n` jobs, keeping them off nodes that just lost their
    /// workers; should Slurm refuse that, once more without. Returns the
    /// jobs submitted.
    pub(crate) async fn submit(&self, n: usize) -> Vec<JobRef> {
        let mut exclude = self.books().excluded_nodes(Instant::now());
        if !exclude.is_empty() {
            tracing::info!(nodes = ?exclude, "keeping new jobs off nodes that lost their workers");
            // sbatch's --exclude replaces the script's own: keep the user's too.
            exclude.extend(
                self.spec
                    .directives()
                    .into_iter()
                    .filter(|d| d.option == "--exclude")
                    .filter_map(|d| d.value),
            );
        }
        let excluding = !exclude.is_empty();
        let mut jobs = Vec::new();
        match self.submit_with(n, exclude, &mut jobs).await {
            Err(e) if excluding && e.refusal().is_some() => {
                tracing::warn!(error = %e, "Slurm refused the jobs with --exclude; submitting them anywhere");
                self.books().suspect_nodes.clear();
                if let Err(e) = self.submit_with(n, Vec::new(), &mut jobs).await {
                    self.books().submit_failed(&e);
                }
            }
            Err(e) => self.books().submit_failed(&e),
            Ok(()) => {}
        }
        jobs
    }

    /// Submits `n` jobs: one array when allowed, else one by one, adding
    /// them to `jobs`. A refusal of the first comes back unbooked; a later
    /// one is booked here.
    async fn submit_with(
        &self,
        n: usize,
        exclude: Vec<String>,
        jobs: &mut Vec<JobRef>,
    ) -> Result<(), SlurmError> {
        let now = Instant::now();
        let use_array =
            self.options.arrays && n > 1 && !self.arrays_refused.load(Ordering::Relaxed);
        if use_array {
            let tasks = u32::try_from(n).unwrap_or(u32::MAX);
            match self.submit_array(tasks, exclude.clone()).await {
                Ok(array) => {
                    tracing::info!(array = %array, tasks, "submitted workers as a job array");
                    let refs: Vec<JobRef> = (0..tasks)
                        .map(|task| JobRef::Task { array, task })
                        .collect();
                    self.books().submitted(refs.iter().copied(), now);
                    jobs.extend(refs);
                    return Ok(());
                }
                Err(e) if e.refusal() == Some(Refusal::Arrays) => {
                    tracing::warn!(error = %e, "job arrays refused; submitting one by one from now on");
                    self.arrays_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        for i in 0..n {
            let options = SubmitOptions {
                exclude: exclude.clone(),
                env: self.index_env(1),
                ..Default::default()
            };
            match self.slurm.submit(&self.script, &options).await {
                Ok(id) => {
                    tracing::info!(job = %id, "submitted worker job");
                    self.books().submitted([JobRef::Job(id)], now);
                    jobs.push(JobRef::Job(id));
                }
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    // Some went out: book the refusal here, so the caller
                    // does not submit all of them again elsewhere.
                    tracing::warn!(error = %e, "submission refused");
                    self.books().submit_failed(&e);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Submits one array of `tasks`, its logs named `NAME-ARRAY_TASK` as
    /// Slurm names array tasks, so a log is found under the id `status` shows.
    async fn submit_array(
        &self,
        tasks: u32,
        exclude: Vec<String>,
    ) -> Result<crate::slurm::JobId, SlurmError> {
        let dir = self.spec.log_directory.display();
        let logs = self
            .spec
            .directives()
            .iter()
            .any(|d| d.option == "--output")
            .then(|| (format!("{dir}/%x-%A_%a.out"), format!("{dir}/%x-%A_%a.err")));
        let options = SubmitOptions {
            array: Some(tasks),
            exclude,
            logs,
            env: self.index_env(u64::from(tasks)),
            ..Default::default()
        };
        self.slurm.submit(&self.script, &options).await
    }

    /// The environment that gives the next `n` jobs their indexes: the
    /// first as `DROVER_JOB_INDEX_BASE`, to which an array task adds its id.
    fn index_env(&self, n: u64) -> Vec<(String, String)> {
        let base = self.books().take_indexes(n);
        vec![(JOB_INDEX_BASE.to_string(), base.to_string())]
    }
}
