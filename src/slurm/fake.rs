//! `FakeSlurm`: an in-memory stand-in for Slurm, named as such, for unit
//! tests of drover's own logic (the cluster's submissions, cancellations,
//! replacements, close and outage handling) with no Slurm installed. It
//! is never evidence that drover works with Slurm: the integration tests
//! on the local Slurm are.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{
    JobFate, JobId, JobInfo, JobRef, JobState, NodeAddress, Refusal, SchedulerConfig, Slurm,
    SlurmError, SubmitOptions, TestVerdict,
};

/// One `submit` call as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The id it returned.
    pub id: JobId,
    /// Array size, or `None` for a plain job.
    pub array: Option<u32>,
    /// The nodes it was kept off.
    pub exclude: Vec<String>,
    /// The environment it was given.
    pub env: Vec<(String, String)>,
    /// Its `#SBATCH --mem=` value, if any.
    pub mem: Option<String>,
}

#[derive(Default)]
struct World {
    next_id: u64,
    jobs: BTreeMap<JobRef, JobInfo>,
    submissions: Vec<Submission>,
    cancelled: Vec<Vec<JobRef>>,
    cancelled_names: Vec<String>,
    refuse_arrays: bool,
    refusals: VecDeque<(Refusal, String)>,
    down: bool,
    calls: u64,
    scheduler: SchedulerConfig,
    /// New jobs wait unconsidered (reason `None`) until `pass`.
    passes: bool,
    /// A per-user cap on active jobs (`MaxSubmitJobsPerUser`).
    submit_cap: Option<usize>,
    /// The largest array taken, whatever `scheduler` says.
    max_array: Option<u32>,
    /// Submissions refused.
    refused: u64,
    /// What `test_submit` says of every script, when it refuses.
    test_refusal: Option<String>,
    /// Whether it keeps accounting (`fates` answers `None` without).
    accounting: bool,
    /// Accounting's record of the jobs it forgot.
    accounted: BTreeMap<JobRef, JobFate>,
    /// `fates` calls so far, and the jobs each asked for.
    fate_calls: Vec<Vec<JobRef>>,
    /// `release` calls so far, and whether it can release at all.
    released: Vec<Vec<JobRef>>,
    cannot_release: bool,
}

/// A fake Slurm; clones share one world.
#[derive(Clone, Default)]
pub struct FakeSlurm {
    world: Arc<Mutex<World>>,
}

/// The `--job-name` a script carries.
fn job_name(script: &str) -> String {
    script
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --job-name="))
        .unwrap_or_default()
        .to_string()
}

impl FakeSlurm {
    /// A fake Slurm that accepts everything, with job ids from 100.
    pub fn new() -> Self {
        let fake = FakeSlurm::default();
        fake.world.lock().next_id = 100;
        fake
    }

    /// Refuses job arrays from now on, as a site with `MaxArraySize=0` does.
    pub fn refuse_arrays(&self) {
        self.world.lock().refuse_arrays = true;
    }

    /// Caps the active jobs (array tasks counted one by one) as a QOS's
    /// `MaxSubmitJobsPerUser` does, refusing what would go over; `None`
    /// lifts the cap.
    pub fn set_submit_cap(&self, cap: Option<usize>) {
        self.world.lock().submit_cap = cap;
    }

    /// Takes arrays of at most `tasks`, as a site's `MaxArraySize` does,
    /// without saying so in its scheduler settings (as over slurmrestd).
    pub fn set_max_array(&self, tasks: Option<u32>) {
        self.world.lock().max_array = tasks;
    }

    /// Makes `test_submit` refuse every script with `message` (`None`:
    /// accept again).
    pub fn refuse_tests(&self, message: Option<&str>) {
        self.world.lock().test_refusal = message.map(Into::into);
    }

    /// Submissions refused so far.
    pub fn refused(&self) -> u64 {
        self.world.lock().refused
    }

    /// Refuses the next submission with `refusal` and Slurm-like words.
    pub fn refuse_next(&self, refusal: Refusal, message: &str) {
        self.world
            .lock()
            .refusals
            .push_back((refusal, message.to_string()));
    }

    /// Says `config` of its scheduler, and from now on leaves new jobs
    /// unconsidered (pending with no reason, as squeue's `None`) until `pass`.
    pub fn set_scheduler(&self, config: SchedulerConfig) {
        let mut w = self.world.lock();
        w.scheduler = config;
        w.passes = true;
    }

    /// A scheduling pass: up to the queue depth of unconsidered jobs are
    /// considered (they wait for `Resources`); returns how many.
    pub fn pass(&self) -> usize {
        let mut w = self.world.lock();
        let depth = w.scheduler.pass_size() as usize;
        let mut n = 0;
        for j in w.jobs.values_mut() {
            if n < depth && j.state == JobState::Pending && j.reason.is_none() {
                j.reason = Some("Resources".into());
                n += 1;
            }
        }
        n
    }

    /// Makes the controller stop answering (`true`) or answer again.
    pub fn set_down(&self, down: bool) {
        self.world.lock().down = down;
    }

    /// Starts a pending job or array task on `node`.
    pub fn start(&self, job: JobRef, node: &str) {
        let mut w = self.world.lock();
        w.next_id += 1;
        let id = w.next_id;
        if let Some(j) = w.jobs.get_mut(&job) {
            j.state = JobState::Running;
            j.reason = None;
            j.nodes = Some(node.to_string());
            j.job_id = j.job_id.or(Some(JobId::new(id)));
        }
    }

    /// Ends a job in `state` with `exit_code`.
    pub fn end(&self, job: JobRef, state: JobState, exit_code: Option<i32>) {
        if let Some(j) = self.world.lock().jobs.get_mut(&job) {
            j.state = state;
            j.exit_code = exit_code;
        }
    }

    /// Forgets a job, as Slurm does some time after it ends or when a
    /// controller restart loses it; with accounting on, accounting keeps
    /// what the listing last said of it.
    pub fn forget(&self, job: JobRef) {
        let mut w = self.world.lock();
        let Some(info) = w.jobs.remove(&job) else {
            return;
        };
        if w.accounting && !w.accounted.contains_key(&job) {
            let fate = JobFate {
                job,
                state: info.state,
                cancelled_by: None,
                exit_code: info.exit_code,
                signal: None,
                reason: info.reason,
                elapsed: None,
                max_rss: None,
                nodes: info.nodes,
            };
            w.accounted.insert(job, fate);
        }
    }

    /// Holds a job as Slurm does after its launch failed: pending again,
    /// `launch_failed_requeued_held`.
    pub fn hold_after_failed_launch(&self, job: JobRef) {
        if let Some(j) = self.world.lock().jobs.get_mut(&job) {
            j.state = JobState::Pending;
            j.reason = Some("launch_failed_requeued_held".into());
            j.nodes = None;
        }
    }

    /// Answers `release` with "cannot" from now on, as a backend without it.
    pub fn cannot_release(&self) {
        self.world.lock().cannot_release = true;
    }

    /// Every `release` call so far, with its jobs.
    pub fn released(&self) -> Vec<Vec<JobRef>> {
        self.world.lock().released.clone()
    }

    /// Keeps accounting from now on, as a site with slurmdbd does.
    pub fn keep_accounting(&self) {
        self.world.lock().accounting = true;
    }

    /// Accounting's record of a job, as `sacct` would give it (a job it
    /// has no record of is left out of its answers).
    pub fn set_fate(&self, fate: JobFate) {
        self.world.lock().accounted.insert(fate.job, fate);
    }

    /// Every `fates` call so far, with the jobs it asked about.
    pub fn fate_calls(&self) -> Vec<Vec<JobRef>> {
        self.world.lock().fate_calls.clone()
    }

    /// Every job and array task Slurm would still run.
    pub fn active(&self) -> Vec<JobRef> {
        let w = self.world.lock();
        w.jobs
            .values()
            .filter(|j| j.state.is_active())
            .map(|j| j.job)
            .collect()
    }

    /// The active jobs in `state`.
    pub fn in_state(&self, state: JobState) -> Vec<JobRef> {
        let w = self.world.lock();
        w.jobs
            .values()
            .filter(|j| j.state == state)
            .map(|j| j.job)
            .collect()
    }

    /// The job's own id, once it has one.
    pub fn job_id(&self, job: JobRef) -> Option<JobId> {
        self.world.lock().jobs.get(&job).and_then(|j| j.job_id)
    }

    /// Every submission so far.
    pub fn submissions(&self) -> Vec<Submission> {
        self.world.lock().submissions.clone()
    }

    /// Every `cancel` call so far, with its jobs.
    pub fn cancelled(&self) -> Vec<Vec<JobRef>> {
        self.world.lock().cancelled.clone()
    }

    /// Every name `cancel_named` was called with.
    pub fn cancelled_names(&self) -> Vec<String> {
        self.world.lock().cancelled_names.clone()
    }

    fn answer(&self, command: &str) -> Result<(), SlurmError> {
        let mut w = self.world.lock();
        w.calls += 1;
        if w.down {
            return Err(SlurmError::Unreachable {
                command: command.into(),
                message: "Unable to contact slurm controller (connect failure)".into(),
            });
        }
        Ok(())
    }

    /// Why `options` would be refused now, if they would.
    fn refusal(w: &mut World, options: &SubmitOptions) -> Option<SlurmError> {
        const ARRAYS: &str =
            "sbatch: error: Batch job submission failed: Invalid job array specification";
        if let Some((refusal, message)) = w.refusals.pop_front() {
            return Some(refused(refusal, message));
        }
        let too_large = |n: u32| w.max_array.is_some_and(|max| n > max);
        match options.array {
            Some(n) if w.refuse_arrays || too_large(n) => {
                return Some(refused(Refusal::Arrays, ARRAYS.into()))
            }
            _ => {}
        }
        let active = w.jobs.values().filter(|j| j.state.is_active()).count();
        let adding = options.array.unwrap_or(1) as usize;
        match w.submit_cap {
            Some(cap) if active + adding > cap => Some(refused(
                Refusal::Limit,
                "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)".into(),
            )),
            _ => None,
        }
    }

    fn new_job(w: &mut World, job: JobRef, job_id: Option<JobId>, name: &str) {
        let info = JobInfo {
            job,
            job_id,
            name: name.to_string(),
            comment: String::new(),
            state: JobState::Pending,
            reason: (!w.passes).then(|| "Resources".into()),
            nodes: None,
            exit_code: None,
            expected_start: None,
        };
        w.jobs.insert(job, info);
    }
}

fn refused(refusal: Refusal, message: String) -> SlurmError {
    SlurmError::Refused {
        command: "sbatch".into(),
        status: "exit status: 1".into(),
        refusal,
        message,
    }
}

#[async_trait::async_trait]
impl Slurm for FakeSlurm {
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError> {
        self.answer("sbatch")?;
        let mut w = self.world.lock();
        if let Some(e) = Self::refusal(&mut w, options) {
            w.refused += 1;
            return Err(e);
        }
        w.next_id += 1;
        let id = JobId::new(w.next_id);
        let name = job_name(script);
        match options.array {
            Some(n) => {
                for task in 0..n {
                    Self::new_job(&mut w, JobRef::Task { array: id, task }, None, &name);
                }
            }
            None => Self::new_job(&mut w, JobRef::Job(id), Some(id), &name),
        }
        w.submissions.push(Submission {
            id,
            array: options.array,
            exclude: options.exclude.clone(),
            env: options.env.clone(),
            mem: script
                .lines()
                .find_map(|l| l.strip_prefix("#SBATCH --mem="))
                .map(String::from),
        });
        Ok(id)
    }

    async fn test_submit(&self, _script: &str) -> Result<TestVerdict, SlurmError> {
        self.answer("sbatch --test-only")?;
        Ok(match self.world.lock().test_refusal.clone() {
            Some(message) => TestVerdict {
                accepted: false,
                message,
            },
            None => TestVerdict {
                accepted: true,
                message: "fake Slurm: would be accepted".into(),
            },
        })
    }

    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError> {
        self.answer("scancel")?;
        let mut w = self.world.lock();
        w.cancelled.push(jobs.to_vec());
        for job in jobs {
            if let Some(j) = w.jobs.get_mut(job).filter(|j| j.state.is_active()) {
                j.state = JobState::Cancelled;
            }
        }
        Ok(())
    }

    async fn cancel_named(&self, name: &str) -> Result<(), SlurmError> {
        self.answer("scancel --name")?;
        let mut w = self.world.lock();
        w.cancelled_names.push(name.to_string());
        for j in w.jobs.values_mut() {
            if j.name == name && j.state.is_active() {
                j.state = JobState::Cancelled;
            }
        }
        Ok(())
    }

    async fn jobs(&self, name: Option<&str>) -> Result<Vec<JobInfo>, SlurmError> {
        self.answer("squeue")?;
        let w = self.world.lock();
        Ok(w.jobs
            .values()
            .filter(|j| name.is_none_or(|n| j.name == n))
            .cloned()
            .collect())
    }

    async fn jobs_named(&self, names: &[String]) -> Result<Vec<JobInfo>, SlurmError> {
        self.answer("squeue")?;
        let w = self.world.lock();
        Ok(w.jobs
            .values()
            .filter(|j| names.contains(&j.name))
            .cloned()
            .collect())
    }

    async fn time_left(&self, _job: JobRef) -> Result<Option<Duration>, SlurmError> {
        self.answer("squeue -o %L")?;
        Ok(None)
    }

    async fn node_addresses(
        &self,
        _partition: Option<&str>,
    ) -> Result<Vec<NodeAddress>, SlurmError> {
        self.answer("sinfo")?;
        // The fake's nodes are this machine.
        Ok(vec![NodeAddress {
            name: "node1".into(),
            address: "127.0.0.1".into(),
        }])
    }

    async fn scheduler_config(&self) -> Result<SchedulerConfig, SlurmError> {
        self.answer("scontrol show config")?;
        Ok(self.world.lock().scheduler)
    }

    async fn release(&self, jobs: &[JobRef]) -> Result<bool, SlurmError> {
        self.answer("scontrol release")?;
        let mut w = self.world.lock();
        if w.cannot_release {
            return Ok(false);
        }
        w.released.push(jobs.to_vec());
        for job in jobs {
            if let Some(j) = w.jobs.get_mut(job) {
                j.reason = Some("Priority".into());
            }
        }
        Ok(true)
    }

    async fn fates(&self, jobs: &[JobRef]) -> Result<Option<Vec<JobFate>>, SlurmError> {
        self.answer("sacct")?;
        let mut w = self.world.lock();
        w.fate_calls.push(jobs.to_vec());
        if !w.accounting {
            return Ok(None);
        }
        Ok(Some(
            jobs.iter()
                .filter_map(|j| w.accounted.get(j).cloned())
                .collect(),
        ))
    }

    fn calls(&self) -> u64 {
        self.world.lock().calls
    }
}
