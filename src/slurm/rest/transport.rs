//! One request to slurmrestd: the token in its headers, a time limit, and
//! a bound on the answer's size. A request that gets no answer is Slurm
//! not answering, never an answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use super::token::TokenSource;
use crate::config::RestEndpoint;
use crate::slurm::SlurmError;

/// The largest answer read. A whole site's job listing at about 3 KiB a
/// job fits 80,000 jobs; more is refused rather than held in memory.
pub const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// An answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The HTTP side of the REST backend.
pub struct Transport {
    client: reqwest::Client,
    base: String,
    pub token: TokenSource,
    calls: Arc<AtomicU64>,
}

impl Transport {
    /// A transport to `endpoint`, each request limited to `timeout`.
    pub fn new(
        endpoint: &RestEndpoint,
        token: TokenSource,
        timeout: Duration,
    ) -> Result<Transport, SlurmError> {
        let builder = crate::tls::ca_client_builder()
            .map_err(|message| SlurmError::Config { message })?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        let builder = match endpoint {
            RestEndpoint::Unix(path) => builder.unix_socket(path.clone()),
            RestEndpoint::Url(_) => builder,
        };
        let client = builder.build().map_err(|e| SlurmError::Config {
            message: format!("cannot make an HTTP client for slurmrestd: {e}"),
        })?;
        Ok(Transport {
            client,
            base: endpoint.base().to_string(),
            token,
            calls: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sends one request and reads its answer, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, SlurmError> {
        let command = format!("{method} {path}");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(token) = self.token.current()? {
            request = request
                .header("X-SLURM-USER-NAME", &token.user)
                .header("X-SLURM-USER-TOKEN", token.secret());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%command, "asking slurmrestd");
        let unreachable = |e: reqwest::Error| SlurmError::Unreachable {
            command: command.clone(),
            message: format!("slurmrestd at {}: {e}", self.base),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(SlurmError::Unexpected {
                    command,
                    output: format!("an answer larger than {} MiB", MAX_ANSWER >> 20),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}
