//! `SchedulerClient`: the authenticated HTTP client of the control plane,
//! used by worker agents, the CLI and tests.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::protocol::{
    paths, DeregisterRequest, Instruction, RegisterRequest, RegisterResponse, SchedulerFile, Token,
    WorkerId, WorkerInfo,
};
use crate::tasks::{Completion, TaskId, TaskInfo, TaskList, TaskSpec};

/// A request to the scheduler that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The scheduler refused the token.
    #[error("the scheduler at {url} refused our token (401): the scheduler file is wrong or belongs to another cluster")]
    Unauthorized {
        /// The scheduler.
        url: String,
    },
    /// The scheduler does not know this worker.
    #[error("the scheduler does not know worker {0}")]
    UnknownWorker(WorkerId),
    /// The scheduler could not be reached or did not answer in time.
    #[error("cannot reach the scheduler at {url}")]
    Unreachable {
        /// The scheduler.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The scheduler answered with an unexpected status.
    #[error("the scheduler at {url} answered {status}: {body}")]
    Status {
        /// The scheduler.
        url: String,
        /// The status.
        status: StatusCode,
        /// Its body.
        body: String,
    },
}

impl ClientError {
    /// Whether retrying later could help (the scheduler may come back).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
            || matches!(self, ClientError::Status { status, .. } if status.is_server_error())
    }
}

/// A client of one scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerClient {
    http: reqwest::Client,
    base: String,
    token: Token,
}

/// Time allowed for a request beyond any long-poll wait.
const REQUEST_SLACK: Duration = Duration::from_secs(10);

impl SchedulerClient {
    /// A client for the scheduler at `base` (`http://host:port`).
    pub fn new(base: impl Into<String>, token: Token) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("an HTTP client builds");
        SchedulerClient {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            token,
        }
    }

    /// A client for the scheduler a scheduler file describes.
    pub fn from_file(file: &SchedulerFile) -> Self {
        Self::new(file.address.clone(), file.token.clone())
    }

    /// A client that shares `http`'s connection pool (for many simulated
    /// workers in one process).
    pub fn with_http(http: reqwest::Client, base: impl Into<String>, token: Token) -> Self {
        SchedulerClient {
            http,
            base: base.into(),
            token,
        }
    }

    /// The scheduler's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        worker: Option<WorkerId>,
    ) -> Result<Option<T>, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            url: self.base.clone(),
            source,
        };
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::UNAUTHORIZED => Err(ClientError::Unauthorized {
                url: self.base.clone(),
            }),
            StatusCode::NOT_FOUND if worker.is_some() => {
                Err(ClientError::UnknownWorker(worker.expect("checked")))
            }
            StatusCode::NO_CONTENT | StatusCode::ACCEPTED => Ok(None),
            s if s.is_success() => Ok(Some(response.json().await.map_err(unreachable)?)),
            status => Err(ClientError::Status {
                url: self.base.clone(),
                status,
                body: response.text().await.unwrap_or_default(),
            }),
        }
    }

    fn expect<T>(&self, value: Option<T>) -> Result<T, ClientError> {
        value.ok_or_else(|| ClientError::Status {
            url: self.base.clone(),
            status: StatusCode::NO_CONTENT,
            body: "expected a body".into(),
        })
    }

    /// Registers a worker.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        let r = self
            .http
            .post(format!("{}{}", self.base, paths::REGISTER))
            .timeout(REQUEST_SLACK)
            .json(req);
        let v = self.send(r, None).await?;
        self.expect(v)
    }

    /// Heartbeats and waits up to `wait` for an instruction.
    pub async fn poll(&self, id: WorkerId, wait: Duration) -> Result<Instruction, ClientError> {
        self.poll_draining(id, wait, false).await
    }

    /// Like `poll`; with `draining`, the worker takes no more tasks.
    pub async fn poll_draining(
        &self,
        id: WorkerId,
        wait: Duration,
        draining: bool,
    ) -> Result<Instruction, ClientError> {
        let r = self
            .http
            .get(format!(
                "{}{}?wait_ms={}&draining={draining}",
                self.base,
                paths::with_id(paths::POLL, id),
                wait.as_millis()
            ))
            .timeout(wait + REQUEST_SLACK);
        let v = self.send(r, Some(id)).await?;
        self.expect(v)
    }

    /// Tells the scheduler this worker leaves, and why.
    pub async fn deregister(&self, id: WorkerId, reason: &str) -> Result<(), ClientError> {
        let r = self
            .http
            .post(format!(
                "{}{}",
                self.base,
                paths::with_id(paths::DEREGISTER, id)
            ))
            .timeout(Duration::from_secs(5))
            .json(&DeregisterRequest {
                reason: reason.to_string(),
            });
        self.send::<serde_json::Value>(r, Some(id)).await.map(drop)
    }

    /// Reports that tasks ended (one request for all of them).
    pub async fn done(&self, id: WorkerId, done: &[Completion]) -> Result<(), ClientError> {
        let r = self
            .http
            .post(format!("{}{}", self.base, paths::with_id(paths::DONE, id)))
            .timeout(REQUEST_SLACK)
            .json(done);
        self.send::<serde_json::Value>(r, Some(id)).await.map(drop)
    }

    /// Submits tasks; dependencies may name tasks of the same batch.
    pub async fn submit(&self, tasks: &[TaskSpec]) -> Result<Vec<TaskId>, ClientError> {
        let r = self
            .http
            .post(format!("{}{}", self.base, paths::TASKS))
            .timeout(REQUEST_SLACK)
            .json(&serde_json::json!({ "tasks": tasks }));
        let v: Option<serde_json::Value> = self.send(r, None).await?;
        let ids = v.map(|v| v["ids"].clone()).unwrap_or_default();
        serde_json::from_value(ids).map_err(|e| ClientError::Status {
            url: self.base.clone(),
            status: StatusCode::OK,
            body: format!("unexpected answer to a submission: {e}"),
        })
    }

    /// Tasks by id (all when `ids` is `None`), with counts by state;
    /// `summary` asks for the counts only.
    pub async fn tasks(
        &self,
        ids: Option<&[TaskId]>,
        summary: bool,
    ) -> Result<TaskList, ClientError> {
        let mut url = format!("{}{}?summary={summary}", self.base, paths::TASKS);
        if let Some(ids) = ids {
            let list: Vec<String> = ids.iter().map(|i| i.0.to_string()).collect();
            url.push_str(&format!("&ids={}", list.join(",")));
        }
        let r = self.http.get(url).timeout(REQUEST_SLACK);
        let v = self.send(r, None).await?;
        self.expect(v)
    }

    /// One task.
    pub async fn task(&self, id: TaskId) -> Result<TaskInfo, ClientError> {
        let r = self
            .http
            .get(format!(
                "{}{}",
                self.base,
                paths::TASK.replace("{task}", &id.0.to_string())
            ))
            .timeout(REQUEST_SLACK);
        let v = self.send(r, None).await?;
        self.expect(v)
    }

    /// Waits until every task in `ids` (every task when `None`) has ended,
    /// checking every `every`; returns them.
    pub async fn wait_tasks(
        &self,
        ids: Option<&[TaskId]>,
        every: Duration,
    ) -> Result<Vec<TaskInfo>, ClientError> {
        loop {
            match ids {
                // The listed tasks themselves tell whether they are over.
                Some(_) => {
                    let tasks = self.tasks(ids, false).await?.tasks;
                    if tasks.iter().all(|t| t.state.is_final()) {
                        return Ok(tasks);
                    }
                }
                // For all tasks, the counts do; the list is fetched once, at the end.
                None => {
                    let c = self.tasks(None, true).await?.counts;
                    if c.waiting + c.ready + c.running == 0 {
                        return Ok(self.tasks(None, false).await?.tasks);
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Cancels a task and what depends on it.
    pub async fn cancel_task(&self, id: TaskId) -> Result<(), ClientError> {
        let r = self
            .http
            .post(format!(
                "{}{}",
                self.base,
                paths::TASK_CANCEL.replace("{task}", &id.0.to_string())
            ))
            .timeout(REQUEST_SLACK);
        self.send::<serde_json::Value>(r, None).await.map(drop)
    }

    /// Asks worker `id` to retire.
    pub async fn retire(&self, id: WorkerId, reason: &str) -> Result<(), ClientError> {
        let r = self
            .http
            .post(format!(
                "{}{}",
                self.base,
                paths::with_id(paths::RETIRE, id)
            ))
            .timeout(REQUEST_SLACK)
            .json(&serde_json::json!({ "reason": reason }));
        self.send::<serde_json::Value>(r, Some(id)).await.map(drop)
    }

    /// Asks every live worker to retire; returns how many were asked.
    pub async fn retire_all(&self, reason: &str) -> Result<usize, ClientError> {
        let r = self
            .http
            .post(format!("{}{}", self.base, paths::RETIRE_ALL))
            .timeout(REQUEST_SLACK)
            .json(&serde_json::json!({ "reason": reason }));
        let v: Option<serde_json::Value> = self.send(r, None).await?;
        Ok(v.and_then(|v| v["retiring"].as_u64()).unwrap_or(0) as usize)
    }

    /// The status of the cluster the scheduler serves.
    pub async fn cluster(&self) -> Result<crate::protocol::ClusterStatus, ClientError> {
        let r = self
            .http
            .get(format!("{}{}", self.base, paths::CLUSTER))
            .timeout(REQUEST_SLACK);
        let v = self.send(r, None).await?;
        self.expect(v)
    }

    /// Asks the cluster to scale to `workers`.
    pub async fn scale(&self, workers: usize) -> Result<(), ClientError> {
        let r = self
            .http
            .post(format!("{}{}", self.base, paths::CLUSTER_SCALE))
            .timeout(REQUEST_SLACK)
            .json(&serde_json::json!({ "workers": workers }));
        self.send::<serde_json::Value>(r, None).await.map(drop)
    }

    /// Asks the cluster to close.
    pub async fn close(&self) -> Result<(), ClientError> {
        let r = self
            .http
            .post(format!("{}{}", self.base, paths::CLUSTER_CLOSE))
            .timeout(REQUEST_SLACK);
        self.send::<serde_json::Value>(r, None).await.map(drop)
    }

    /// Every worker the scheduler knows.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        let r = self
            .http
            .get(format!("{}{}", self.base, paths::WORKERS))
            .timeout(REQUEST_SLACK);
        let v = self.send(r, None).await?;
        self.expect(v)
    }
}
