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
        if let Err(e) = self.check_job().await {
            self.books().submit_failed(&e);
            return Vec::new();
        }
        let exclude = self.exclusions();
        let excluding = !exclude.is_empty();
        let mut jobs = Vec::new();
        match self.submit_all(n, &exclude, &mut jobs).await {
            Err(e) if excluding && e.refusal().is_some() => {
                tracing::warn!(error = %e, "Slurm refused the jobs with --exclude; submitting them anywhere");
                self.books().forget_suspects();
                let left = n.saturating_sub(jobs.len());
                if let Err(e) = self.submit_all(left, &[], &mut jobs).await {
                    self.books().submit_failed(&e);
                }
            }
            Err(e) => self.books().submit_failed(&e),
            Ok(()) => {}
        }
        jobs
    }

    /// Asks Slurm (`sbatch --test-only`), once, whether it would take the
    /// pool's job, so that an account, QOS or partition it refuses is an
    /// error in Slurm's words with nothing submitted. A limit (the user at a
    /// cap now) and Slurm not answering are no verdict on the job: the pool
    /// goes on, and meets them as it submits. A backend that cannot ask
    /// without submitting (slurmrestd) is not asked.
    pub(crate) async fn check_job(&self) -> Result<(), SlurmError> {
        if self.checked.load(Ordering::Relaxed) || !self.slurm.tests_without_submitting() {
            return Ok(());
        }
        let command = match &self.group {
            Some(g) => format!("sbatch --test-only (group {g})"),
            None => "sbatch --test-only".to_string(),
        };
        let refused = match self.slurm.test_submit(&self.script()).await {
            Ok(v) if v.accepted => None,
            Ok(v) => Some(SlurmError::failed(command, "refused".into(), v.message)),
            Err(e) => Some(e),
        };
        match refused {
            Some(e) if !e.is_transient() => Err(e),
            Some(e) => {
                tracing::info!(error = %e, "Slurm gave no verdict on the job; submitting anyway");
                self.checked.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => {
                self.checked.store(true, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// The nodes new jobs keep off now, with the user's own `--exclude`
    /// (sbatch's replaces the script's).
    fn exclusions(&self) -> Vec<String> {
        let mut exclude = self.books().excluded_nodes(Instant::now());
        if !exclude.is_empty() {
            tracing::info!(nodes = ?exclude, "keeping new jobs off nodes that lost their workers");
            exclude.extend(
                self.spec
                    .directives()
                    .into_iter()
                    .filter(|d| d.option == "--exclude")
                    .filter_map(|d| d.value),
            );
        }
        exclude
    }

    /// Submits `n` jobs as arrays of at most the site's size (one by one
    /// where arrays are refused). An array refused for a limit, or for its
    /// size, is tried again at half the size, down to one job: Slurm counts
    /// an array's tasks against a user's cap, so a cap of 4 takes 4 of 8
    /// rather than none. The refusal that ends it comes back unbooked.
    async fn submit_all(
        &self,
        n: usize,
        exclude: &[String],
        jobs: &mut Vec<JobRef>,
    ) -> Result<(), SlurmError> {
        let start = jobs.len();
        let mut size = n;
        loop {
            let left = n - (jobs.len() - start);
            if left == 0 {
                return Ok(());
            }
            let arrays = self.arrays_allowed();
            let k = match arrays {
                true => size.min(left).min(self.books().array_size()),
                false => left,
            };
            let before = jobs.len();
            match self.submit_with(k, exclude.to_vec(), jobs).await {
                Ok(()) if jobs.len() - before == k => {}
                // A later job of a one-by-one batch was refused (booked).
                Ok(()) => return Ok(()),
                Err(e) if arrays && k > 1 && halves(&e) => {
                    let arrays = e.refusal() == Some(Refusal::Arrays);
                    self.books().array_refused(k, arrays, &e);
                    tracing::info!(tasks = k, error = %e, "Slurm refused the array; trying half as many");
                    size = k / 2;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether several jobs go as one array.
    fn arrays_allowed(&self) -> bool {
        self.options.arrays && !self.arrays_refused.load(Ordering::Relaxed)
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
        if self.arrays_allowed() && n > 1 {
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
                // Small arrays refused too: the site takes none.
                Err(e) if e.refusal() == Some(Refusal::Arrays) && n < 4 => {
                    tracing::warn!(error = %e, "job arrays refused; submitting one by one from now on");
                    self.arrays_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let script = self.script();
        for i in 0..n {
            let options = SubmitOptions {
                exclude: exclude.clone(),
                env: self.index_env(1),
                ..Default::default()
            };
            match self.slurm.submit(&script, &options).await {
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
        self.slurm.submit(&self.script(), &options).await
    }

    /// The environment that gives the next `n` jobs their indexes: the
    /// first as `DROVER_JOB_INDEX_BASE`, to which an array task adds its id.
    fn index_env(&self, n: u64) -> Vec<(String, String)> {
        let base = self.books().take_indexes(n);
        vec![(JOB_INDEX_BASE.to_string(), base.to_string())]
    }
}

/// Whether a refused array is worth trying at half the size: a limit (the
/// half may fit under a cap) or its size.
fn halves(e: &SlurmError) -> bool {
    matches!(e.refusal(), Some(Refusal::Limit | Refusal::Arrays))
}
