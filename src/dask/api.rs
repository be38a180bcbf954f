//! How drover reads and steers a Dask scheduler over HTTP: who registered,
//! how many workers Dask wants, how busy each is, and retire these.
//!
//! On a Dask scheduler drover started, only drover's own routes
//! (`/drover/v1/...`, `routes.py`) are used, with the pool's token: Dask's
//! `/api/v1` has no login, so drover does not turn it on. On a scheduler
//! the user started (`dask_scheduler_file`), drover uses what that user
//! turned on: Dask's `/api/v1` and `/json/counts.json`. Every answer is
//! read up to a bound, so a scheduler cannot make drover hold gigabytes.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::DaskError;
use crate::protocol::{DaskEndpoint, Token};

/// The most bytes of one answer: a worker listing of 100,000 workers is
/// about 15 MiB.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// A worker as the Dask scheduler lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DaskWorker {
    /// Its name (drover names them after their Slurm job).
    #[serde(deserialize_with = "name_as_string")]
    pub name: String,
    /// Its comm address.
    pub address: String,
}

fn name_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

#[derive(Deserialize)]
struct WorkerList {
    workers: Vec<DaskWorker>,
    /// drover's route only: each worker's busy seconds, by name.
    #[serde(default)]
    busy_seconds: HashMap<String, f64>,
}

/// The Dask scheduler's workers, and how busy each has been.
#[derive(Debug, Clone, Default)]
pub struct DaskWorkers {
    /// Registered now.
    pub workers: Vec<DaskWorker>,
    /// Each worker's compute seconds so far by name, departed ones
    /// included (Dask's own task records; only on drover's route).
    pub busy_seconds: HashMap<String, f64>,
}

/// The Dask scheduler's HTTP side, as drover uses it.
#[derive(Debug, Clone)]
pub struct DaskApi {
    http: reqwest::Client,
    base: String,
    /// drover's routes and their secret, on a scheduler drover started.
    token: Option<Token>,
}

impl DaskApi {
    /// The API of the scheduler at `endpoint`: drover's own routes when
    /// the endpoint has a token, Dask's otherwise.
    pub fn new(endpoint: &DaskEndpoint) -> DaskApi {
        DaskApi::at(&endpoint.http, endpoint.token.clone())
    }

    /// The API at `base` (`http://host:port`), with drover's token or not.
    pub fn at(base: &str, token: Option<Token>) -> DaskApi {
        DaskApi {
            http: crate::tls::http_client_builder(None)
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// Every worker registered with the Dask scheduler.
    pub async fn workers(&self) -> Result<Vec<DaskWorker>, DaskError> {
        Ok(self.workers_busy().await?.workers)
    }

    /// Every worker registered with the Dask scheduler, and each one's busy
    /// time (none from a scheduler without drover's routes).
    pub async fn workers_busy(&self) -> Result<DaskWorkers, DaskError> {
        let path = self.route("/drover/v1/workers", "/api/v1/get_workers");
        let list: WorkerList = self.get_json(path).await?;
        Ok(DaskWorkers {
            workers: list.workers,
            busy_seconds: list.busy_seconds,
        })
    }

    /// How many workers Dask's own adaptive logic wants now (its
    /// `adaptive_target`, from queued work, task durations and memory).
    pub async fn desired_workers(&self) -> Result<usize, DaskError> {
        #[derive(Deserialize)]
        struct Counts {
            desired_workers: usize,
        }
        let path = self.route("/drover/v1/desired", "/json/counts.json");
        let counts: Counts = self.get_json(path).await?;
        Ok(counts.desired_workers)
    }

    /// How busy each worker is, by Dask name: the tasks the scheduler has
    /// assigned to it (drover's route), else the tasks its last heartbeat
    /// reported (Dask's identity, which fails once workers report task
    /// timings).
    pub async fn activity(&self) -> Result<Vec<(String, u32)>, DaskError> {
        #[derive(Deserialize)]
        struct Load {
            #[serde(deserialize_with = "name_as_string")]
            name: String,
            processing: u32,
        }
        #[derive(Deserialize)]
        struct Loads {
            workers: Vec<Load>,
        }
        if self.token.is_some() {
            let loads: Loads = self.get_json("/drover/v1/workers").await?;
            return Ok(loads
                .workers
                .into_iter()
                .map(|l| (l.name, l.processing))
                .collect());
        }
        let identity: serde_json::Value = self.get_json("/json/identity.json").await?;
        Ok(parse_activity(&identity))
    }

    /// Retires `addresses` through Dask: their data moves to other workers
    /// first, then Dask forgets them. Returns, when Dask has done so (or
    /// after `timeout`), the addresses Dask did retire: one whose data had
    /// nowhere to go is left out.
    pub async fn retire(
        &self,
        addresses: &[String],
        timeout: Duration,
    ) -> Result<Vec<String>, DaskError> {
        let path = self.route("/drover/v1/retire", "/api/v1/retire_workers");
        let url = format!("{}{path}", self.base);
        let request = self
            .authorized(self.http.post(&url))
            .timeout(timeout)
            .json(&serde_json::json!({ "workers": addresses }));
        let body = read_bounded(send(request, &url).await?, &url).await?;
        if self.token.is_some() {
            return serde_json::from_slice(&body).map_err(|e| http_error(&url, e));
        }
        let retired: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| http_error(&url, e))?;
        Ok(retired.keys().cloned().collect())
    }

    /// drover's route when it has the token, else Dask's own.
    fn route(&self, drovers: &'static str, dasks: &'static str) -> &'static str {
        if self.token.is_some() {
            drovers
        } else {
            dasks
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.bearer_auth(t.expose()),
            None => request,
        }
    }

    /// GETs `path` and reads its JSON answer, up to the bound.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, DaskError> {
        let url = format!("{}{path}", self.base);
        let request = self
            .authorized(self.http.get(&url))
            .timeout(Duration::from_secs(10));
        let body = read_bounded(send(request, &url).await?, &url).await?;
        serde_json::from_slice(&body).map_err(|e| http_error(&url, e))
    }
}

/// Task states in which a task occupies a worker (Dask's worker-side states).
const BUSY_STATES: &[&str] = &[
    "executing",
    "long-running",
    "ready",
    "constrained",
    "waiting",
    "fetch",
    "flight",
];

/// Each worker's name and busy task count from the scheduler's identity.
fn parse_activity(identity: &serde_json::Value) -> Vec<(String, u32)> {
    let Some(workers) = identity.get("workers").and_then(|w| w.as_object()) else {
        return Vec::new();
    };
    workers
        .values()
        .filter_map(|w| {
            let name = match w.get("name")? {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let counts = w.pointer("/metrics/task_counts");
            let busy = BUSY_STATES
                .iter()
                .filter_map(|s| counts?.get(*s)?.as_u64())
                .sum::<u64>();
            Some((name, u32::try_from(busy).unwrap_or(u32::MAX)))
        })
        .collect()
}

fn http_error(url: &str, message: impl ToString) -> DaskError {
    DaskError::Http {
        url: url.to_string(),
        message: message.to_string(),
    }
}

/// Sends `request`; a failure or an error status is a `DaskError::Http`.
async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response, DaskError> {
    let resp = request.send().await.map_err(|e| http_error(url, e))?;
    if !resp.status().is_success() {
        return Err(http_error(url, format!("HTTP {}", resp.status())));
    }
    Ok(resp)
}

/// The body of `resp`, refused once it passes `MAX_ANSWER_BYTES`.
async fn read_bounded(mut resp: reqwest::Response, url: &str) -> Result<Vec<u8>, DaskError> {
    let too_large = || {
        http_error(
            url,
            format!("the answer is over {MAX_ANSWER_BYTES} bytes; drover reads no more"),
        )
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_error(url, e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_counts_the_tasks_that_occupy_a_worker() {
        let identity = serde_json::json!({
            "workers": {
                "tcp://a:1": {"name": "slurm-1", "metrics": {"task_counts": {"executing": 2, "ready": 3, "memory": 40}}},
                "tcp://b:1": {"name": "slurm-2", "metrics": {"task_counts": {}}},
                "tcp://c:1": {"name": 7, "metrics": {}}
            }
        });
        let mut a = parse_activity(&identity);
        a.sort();
        assert_eq!(
            a,
            [
                ("7".to_string(), 0),
                ("slurm-1".into(), 5),
                ("slurm-2".into(), 0)
            ]
        );
    }

    /// A server that answers every request with `body` (once).
    async fn answering(body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_refused_without_a_length() {
        // No Content-Length: the bound holds while reading.
        let mut body = b"{\"workers\": [".to_vec();
        body.resize(MAX_ANSWER_BYTES + 10, b' ');
        let base = answering(body).await;
        let err = DaskApi::at(&base, None).workers().await.unwrap_err();
        assert!(err.to_string().contains("reads no more"), "{err}");
    }

    #[tokio::test]
    async fn drovers_routes_carry_the_token() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let token = Token::generate();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap();
            let body = br#"{"workers": [{"name": "slurm-1", "address": "tcp://a:1"}]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let workers = DaskApi::at(&base, Some(token.clone()))
            .workers()
            .await
            .unwrap();
        assert_eq!(workers[0].name, "slurm-1");
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /drover/v1/workers "), "{request}");
        let bearer = format!("authorization: bearer {}", token.expose()).to_ascii_lowercase();
        assert!(request.contains(&bearer), "{request}");
    }
}
