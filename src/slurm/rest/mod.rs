//! `SlurmRest`: the `Slurm` trait over slurmrestd, for hosts that reach
//! Slurm over HTTP and have none of its commands. JWT authentication
//! (`SLURM_JWT`, or a token file), the newest API version both sides
//! speak, sbatch's directives read into the job description.
//!
//! What this API cannot do, and what stands in: no batched cancel (one
//! `DELETE` per job, a few at a time); no `--exclude` before v0.0.42
//! (dropped, logged);
//! no test-only submission (`test_submit` submits the job to begin in a
//! year, and cancels it); no `scontrol show config` (Slurm's defaults are
//! assumed, and a too-large array is learned from its refusal).

mod answer;
mod job_desc;
mod job_typed;
mod site;
mod token;
mod transport;
mod version;

pub use token::{Token, TokenSource};
pub use version::ApiVersion;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::OnceCell;

use super::{
    JobId, JobInfo, JobRef, NodeAddress, PartitionInfo, SchedulerConfig, SiteInfo, Slurm,
    SlurmError, SubmitOptions, TestVerdict, UserLimits,
};
use crate::config::{PoolOptions, RestEndpoint};
use transport::{Answer, Transport};

/// When a job submitted only to be checked may begin: never, in practice.
const PROBE_BEGIN: Begin = Begin::InDays(365);

/// When a job may begin.
#[derive(Clone, Copy)]
enum Begin {
    /// This many days from now.
    InDays(u64),
}

impl Begin {
    /// The job description's `begin_time` in `version`'s form: sbatch's
    /// text (`now+365days`), or a Unix time.
    fn field(self, version: ApiVersion) -> serde_json::Value {
        let Begin::InDays(days) = self;
        if !version.data_parser() {
            return serde_json::Value::String(format!("now+{days}days"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        serde_json::json!({"set": true, "infinite": false, "number": now + days * 86_400})
    }
}

/// How many cancellations are in flight at once.
const CANCEL_CONCURRENCY: usize = 16;

/// Slurm through slurmrestd.
pub struct SlurmRest {
    endpoint: RestEndpoint,
    http: Transport,
    /// The version spoken, once negotiated (or as forced).
    version: OnceCell<ApiVersion>,
    /// Whether dropping an exclusion has been logged.
    exclude_noted: AtomicBool,
}

impl std::fmt::Debug for SlurmRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmRest")
            .field("endpoint", &self.endpoint.to_string())
            .field("token", &self.http.token)
            .field("version", &self.version.get())
            .finish()
    }
}

impl SlurmRest {
    /// slurmrestd at `endpoint`, authenticated by `token`, each request
    /// limited to `timeout`. Nothing is asked of it yet.
    pub fn new(
        endpoint: RestEndpoint,
        token: TokenSource,
        timeout: Duration,
    ) -> Result<SlurmRest, SlurmError> {
        if matches!(token, TokenSource::None) && !matches!(endpoint, RestEndpoint::Unix(_)) {
            return Err(SlurmError::Config {
                message: "slurmrestd needs a token: set SLURM_JWT (`export $(scontrol token)`) or slurm-jwt-file".into(),
            });
        }
        Ok(SlurmRest {
            http: Transport::new(&endpoint, token, timeout)?,
            endpoint,
            version: OnceCell::new(),
            exclude_noted: AtomicBool::new(false),
        })
    }

    /// slurmrestd as a pool's settings name it (`slurmrestd`,
    /// `slurm-jwt-file`, else `SLURM_JWT`; `slurm-timeout`).
    pub fn for_pool(pool: &PoolOptions) -> Result<SlurmRest, SlurmError> {
        let endpoint = pool.slurmrestd.clone().ok_or_else(|| SlurmError::Config {
            message: "slurm-api = \"rest\" needs slurmrestd's address: --slurmrestd URL, SLURMRESTD_URL, or slurmrestd in [pool]".into(),
        })?;
        let token = match (&pool.slurm_jwt_file, std::env::var("SLURM_JWT")) {
            (Some(path), _) => {
                token::read_file(path)?;
                TokenSource::File {
                    path: path.clone(),
                    cached: Default::default(),
                }
            }
            (None, Ok(text)) => TokenSource::Env(Token::parse(&text, "SLURM_JWT")?),
            (None, Err(_)) => TokenSource::None,
        };
        let timeout = pool
            .slurm_timeout
            .map(|t| t.duration())
            .unwrap_or(super::cli::DEFAULT_COMMAND_TIMEOUT);
        SlurmRest::new(endpoint, token, timeout)
    }

    /// Speaks `version` without asking the server which it prefers.
    pub fn with_version(self, version: ApiVersion) -> SlurmRest {
        let _ = self.version.set(version);
        self
    }

    /// The version spoken: the newest the server offers of those drover
    /// speaks, found by asking each one's `ping` (a version the server
    /// lacks answers 404).
    pub async fn version(&self) -> Result<ApiVersion, SlurmError> {
        self.version
            .get_or_try_init(|| async {
                for v in ApiVersion::PREFERRED {
                    let answer = self
                        .http
                        .send(Method::GET, &format!("{}/ping", v.slurm()), None)
                        .await?;
                    match answer.status {
                        404 => continue,
                        401 | 403 => {
                            return Err(answer::failure("GET ping", answer.status, &answer.body))
                        }
                        _ => {
                            tracing::debug!(version = %v, "speaking slurmrestd's API");
                            return Ok(v);
                        }
                    }
                }
                let doc = self.http.send(Method::GET, "/openapi/v3", None).await?;
                let offered = serde_json::from_slice(&doc.body)
                    .map(|d| version::offered(&d))
                    .unwrap_or_default();
                Err(SlurmError::Config {
                    message: version::none_in_common(&self.endpoint.to_string(), &offered),
                })
            })
            .await
            .copied()
    }

    /// `method` on `path` under the negotiated version's prefix.
    async fn ask(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(String, Answer), SlurmError> {
        let full = format!("{}{path}", self.version().await?.slurm());
        let command = format!("{method} {full}");
        let answer = self.http.send(method, &full, body).await?;
        Ok((command, answer))
    }

    /// Every job slurmctld holds, as one listing.
    async fn listing(&self) -> Result<Vec<JobInfo>, SlurmError> {
        let (command, a) = self.ask(Method::GET, "/jobs", None).await?;
        match a.status {
            // A listing with errors is read as Slurm not answering.
            200 | 500 => super::squeue::parse_listing(&command, &a.body),
            s => Err(answer::failure(&command, s, &a.body)),
        }
    }

    async fn cancel_one(&self, job: String) -> Result<(), SlurmError> {
        let (command, a) = self
            .ask(Method::DELETE, &format!("/job/{job}"), None)
            .await?;
        answer::cancelled(&command, a.status, &a.body)
    }

    /// Submits `script`; `begin`, when given, is when the job may start.
    async fn submit_with(
        &self,
        script: &str,
        options: &SubmitOptions,
        begin: Option<Begin>,
    ) -> Result<JobId, SlurmError> {
        let version = self.version().await?;
        let dropped = !options.exclude.is_empty() && !version.data_parser();
        if dropped && !self.exclude_noted.swap(true, Ordering::Relaxed) {
            tracing::info!(%version, nodes = ?options.exclude, "slurmrestd's job description has no --exclude: submitting without it");
        }
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| "/".into());
        let mut body =
            job_desc::submission(script, options, &Self::job_environment(), &cwd, version)?;
        if let Some(begin) = begin {
            body["job"]["begin_time"] = begin.field(version);
        }
        let (command, a) = self.ask(Method::POST, "/job/submit", Some(&body)).await?;
        answer::submitted(&command, a.status, &a.body)
    }

    /// The environment a job inherits, as sbatch's default `ALL` has it,
    /// without the token: the job does not need it, and should not carry it.
    fn job_environment() -> BTreeMap<String, String> {
        std::env::vars().filter(|(k, _)| k != "SLURM_JWT").collect()
    }
}

#[async_trait::async_trait]
impl Slurm for SlurmRest {
    async fn submit(&self, script: &str, options: &SubmitOptions) -> Result<JobId, SlurmError> {
        self.submit_with(script, options, None).await
    }

    /// slurmrestd has no test-only submission: the job is submitted to
    /// begin in a year, and cancelled at once; Slurm's refusal (or
    /// acceptance) is the verdict. (Held would not do: Slurm accepts a
    /// held job it could never run, and checks it only on release.)
    async fn test_submit(&self, script: &str) -> Result<TestVerdict, SlurmError> {
        match self
            .submit_with(script, &SubmitOptions::default(), Some(PROBE_BEGIN))
            .await
        {
            Ok(id) => {
                self.cancel(&[JobRef::Job(id)]).await?;
                Ok(TestVerdict {
                    accepted: true,
                    message: format!(
                        "slurmrestd accepted the job (submitted as job {id} to begin in a year, and cancelled: its API has no test-only submission)"
                    ),
                })
            }
            Err(SlurmError::Refused { message, .. }) => Ok(TestVerdict {
                accepted: false,
                message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn cancel(&self, jobs: &[JobRef]) -> Result<(), SlurmError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let ids: Vec<String> = jobs.iter().map(JobRef::to_string).collect();
        stream::iter(ids)
            .map(|id| self.cancel_one(id))
            .buffer_unordered(CANCEL_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    async fn cancel_named(&self, name: &str) -> Result<(), SlurmError> {
        let mut ids: Vec<String> = self
            .listing()
            .await?
            .into_iter()
            .filter(|j| j.name == name && j.state.is_active())
            .map(|j| match j.job {
                // An array's pending tasks go with their array's id.
                JobRef::Task { array, .. } if j.job_id.is_none() => array.to_string(),
                other => other.to_string(),
            })
            .collect();
        ids.sort();
        ids.dedup();
        let refs: Vec<JobRef> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        self.cancel(&refs).await
    }

    async fn jobs(&self, name: Option<&str>) -> Result<Vec<JobInfo>, SlurmError> {
        let mut jobs = self.listing().await?;
        if let Some(name) = name {
            let names: Vec<&str> = name.split(',').collect();
            jobs.retain(|j| names.contains(&j.name.as_str()));
        }
        Ok(jobs)
    }

    /// One listing for every name: slurmrestd lists all jobs anyway.
    async fn jobs_named(&self, names: &[String]) -> Result<Vec<JobInfo>, SlurmError> {
        let mut jobs = self.listing().await?;
        jobs.retain(|j| names.contains(&j.name));
        Ok(jobs)
    }

    async fn time_left(&self, job: JobRef) -> Result<Option<Duration>, SlurmError> {
        let (command, a) = self.ask(Method::GET, "/jobs", None).await?;
        if a.status != 200 {
            return Err(answer::failure(&command, a.status, &a.body));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        super::squeue::time_left(&command, &a.body, job, now)
    }

    async fn node_addresses(
        &self,
        partition: Option<&str>,
    ) -> Result<Vec<NodeAddress>, SlurmError> {
        let (pc, parts) = self.ask(Method::GET, "/partitions", None).await?;
        if parts.status != 200 {
            return Err(answer::failure(&pc, parts.status, &parts.body));
        }
        let (nc, nodes) = self.ask(Method::GET, "/nodes", None).await?;
        if nodes.status != 200 {
            return Err(answer::failure(&nc, nodes.status, &nodes.body));
        }
        Ok(answer::node_addresses(
            &answer::nodes(&nc, &nodes.body)?,
            &answer::partitions(&pc, &parts.body)?,
            partition,
        ))
    }

    /// Slurm's defaults: these API versions do not serve the scheduler's
    /// configuration. (An array larger than the site allows is refused,
    /// and the pool learns the limit from that.)
    async fn scheduler_config(&self) -> Result<SchedulerConfig, SlurmError> {
        self.version().await?;
        Ok(SchedulerConfig::default())
    }

    /// The release from `ping`; accounting on when slurmdbd's side of the
    /// API answers.
    async fn site(&self) -> Result<SiteInfo, SlurmError> {
        let (command, ping) = self.ask(Method::GET, "/ping", None).await?;
        let version = site::release(&command, &ping.body)?;
        let db = format!("/slurmdb/{}/diag", self.version().await?.tag());
        let accounting = match self.http.send(Method::GET, &db, None).await?.status {
            200 => Some("accounting_storage/slurmdbd".to_string()),
            _ => None,
        };
        Ok(SiteInfo {
            version,
            accounting,
            ..Default::default()
        })
    }

    async fn partitions(&self) -> Result<Vec<PartitionInfo>, SlurmError> {
        let (command, a) = self.ask(Method::GET, "/partitions", None).await?;
        match a.status {
            200 => site::partitions(&command, &a.body),
            s => Err(answer::failure(&command, s, &a.body)),
        }
    }

    /// The user's associations and every QOS, from slurmdbd's side of the
    /// API; `None` when it does not answer (no accounting).
    async fn user_limits(&self) -> Result<Option<UserLimits>, SlurmError> {
        let user = match self.http.token.current()? {
            Some(t) => t.user,
            None => return Ok(None),
        };
        let db = format!("/slurmdb/{}", self.version().await?.tag());
        let assoc_path = format!("{db}/associations?user={user}");
        let qos_path = format!("{db}/qos");
        let assoc = self.http.send(Method::GET, &assoc_path, None).await?;
        let qos = self.http.send(Method::GET, &qos_path, None).await?;
        if assoc.status != 200 || qos.status != 200 {
            return Ok(None);
        }
        site::user_limits(
            &user,
            (&format!("GET {assoc_path}"), &assoc.body),
            (&format!("GET {qos_path}"), &qos.body),
        )
        .map(Some)
    }

    fn calls(&self) -> u64 {
        self.http.calls()
    }

    fn child_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("DROVER_SLURM_API".to_string(), "rest".to_string()),
            ("SLURMRESTD_URL".to_string(), self.endpoint.to_string()),
        ];
        match &self.http.token {
            TokenSource::File { path, .. } => {
                env.push(("DROVER_SLURM_JWT_FILE".into(), path.display().to_string()))
            }
            TokenSource::Env(t) => env.push(("SLURM_JWT".into(), t.secret().to_string())),
            TokenSource::None => {}
        }
        env
    }

    /// Its test submits a job (and cancels it).
    fn tests_without_submitting(&self) -> bool {
        false
    }

    fn differences(&self, _release: super::dialect::Release) -> Vec<&'static str> {
        self.version
            .get()
            .map(|v| super::dialect::rest(*v))
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        match self.version.get() {
            Some(v) => format!("slurmrestd {v} at {}", self.endpoint),
            None => format!("slurmrestd at {}", self.endpoint),
        }
    }
}
