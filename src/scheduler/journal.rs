//! A scheduler's journal at start: who the scheduler was (its cluster id,
//! token, certificate and address), and the changes to replay into its
//! book before it serves anyone.

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;

use super::registry::Registry;
use super::SchedulerError;
use crate::journal::{Identity, Journal, JournalError, Op, DROVER_VERSION};
use crate::protocol::{ClusterId, Token};
use crate::tls::{CertError, ClusterCert};

/// An opened journal, not yet replayed.
pub(super) struct Opened {
    journal: Journal,
    /// The scheduler the journal was written by, if it has records.
    pub(super) identity: Option<Recorded>,
    ops: Vec<Op>,
}

/// The identity a journal records, parsed.
pub(super) struct Recorded {
    pub(super) cluster_id: ClusterId,
    pub(super) token: Token,
    cert_pem: String,
    key_pem: String,
    address: Option<SocketAddr>,
    /// When the pool began, as its first identity says (0: not said).
    pub(super) began_ms: u64,
}

impl Recorded {
    /// The certificate its workers pin.
    pub(super) fn cert(&self) -> Result<ClusterCert, CertError> {
        ClusterCert::from_pem(&self.cert_pem, &self.key_pem)
    }
}

fn bad(path: &Path, index: usize, cause: impl Into<String>) -> JournalError {
    JournalError::Record {
        path: path.to_path_buf(),
        index,
        cause: cause.into(),
    }
}

/// Opens the journal at `path` (creating it when there is none).
pub(super) fn open(path: &Path) -> Result<Opened, SchedulerError> {
    let (journal, ops) = Journal::open(path)?;
    let mut identity = None;
    if ops.iter().any(|op| matches!(op, Op::Closed { .. })) {
        return Err(JournalError::Closed {
            path: path.to_path_buf(),
        }
        .into());
    }
    for (index, op) in ops.iter().enumerate() {
        let Op::Identity(id) = op else {
            if index == 0 {
                return Err(
                    bad(path, 0, "the first record is not the scheduler's identity").into(),
                );
            }
            continue;
        };
        let cluster_id = id
            .cluster_id
            .parse::<ClusterId>()
            .map_err(|e| bad(path, index, format!("cluster id: {e}")))?;
        let token: Token = serde_json::from_value(serde_json::Value::String(id.token.clone()))
            .map_err(|e| bad(path, index, format!("token: {e}")))?;
        let began_ms = match &identity {
            Some(Recorded { began_ms, .. }) if *began_ms > 0 => *began_ms,
            _ => id.began_ms,
        };
        identity = Some(Recorded {
            began_ms,
            cluster_id,
            token,
            cert_pem: id.cert_pem.clone(),
            key_pem: id.key_pem.clone(),
            address: id.address.parse().ok(),
        });
    }
    Ok(Opened {
        journal,
        identity,
        ops,
    })
}

/// When the pool began: as the journal's identity says, else now.
pub(super) fn began_ms(opened: Option<&Opened>) -> u64 {
    opened
        .and_then(|o| o.identity.as_ref())
        .map(|id| id.began_ms)
        .filter(|ms| *ms > 0)
        .unwrap_or_else(crate::protocol::unix_ms)
}

/// Listens where the journal's scheduler listened, so that its workers
/// find it again; where that address is taken or gone, at `wanted`.
pub(super) async fn listen(
    opened: Option<&Opened>,
    wanted: SocketAddr,
) -> Result<TcpListener, SchedulerError> {
    if let Some(before) = opened.and_then(|o| o.identity.as_ref()?.address) {
        match TcpListener::bind(before).await {
            Ok(listener) => return Ok(listener),
            Err(e) => tracing::warn!(
                address = %before,
                error = %e,
                "cannot listen where the journal's scheduler did; its workers must re-read the scheduler file"
            ),
        }
    }
    TcpListener::bind(wanted)
        .await
        .map_err(|cause| SchedulerError::Bind {
            addr: wanted,
            cause,
        })
}

impl Opened {
    /// Replays the journal into `registry` and keeps it there; a new
    /// journal (or one whose scheduler now listens elsewhere) first gets
    /// this scheduler's identity, made durable before anyone is served.
    pub(super) async fn restore(
        self,
        registry: &mut Registry,
        cluster_id: &ClusterId,
        token: &Token,
        cert: Option<&ClusterCert>,
        addr: SocketAddr,
    ) -> Result<(), SchedulerError> {
        let began_ms = began_ms(Some(&self));
        let Opened {
            mut journal,
            identity,
            ops,
        } = self;
        let records = ops.len();
        let path = journal.path().to_path_buf();
        for (index, op) in ops.into_iter().enumerate() {
            registry
                .replay(op)
                .map_err(|cause| bad(&path, index, cause))?;
        }
        registry
            .replay_finished()
            .map_err(|cause| bad(&path, records, cause))?;
        registry.expect_returns();
        if records > 0 {
            let counts = registry.tasks.counts();
            tracing::info!(
                journal = %journal.path().display(),
                records,
                workers = registry.live(),
                tasks = ?counts,
                "continuing from the journal"
            );
        }
        let same = identity.as_ref().is_some_and(|id| {
            id.address == Some(addr) && cert.map(ClusterCert::cert_pem).unwrap_or("") == id.cert_pem
        });
        if !same {
            let seq = journal.append(&Op::Identity(Identity {
                drover: DROVER_VERSION.into(),
                cluster_id: cluster_id.to_string(),
                token: token.expose().to_string(),
                cert_pem: cert.map(|c| c.cert_pem().to_string()).unwrap_or_default(),
                key_pem: cert.map(|c| c.key_pem().to_string()).unwrap_or_default(),
                address: addr.to_string(),
                began_ms,
            }));
            journal.waiter().durable(seq).await?;
        }
        registry.keep_journal(journal);
        Ok(())
    }
}
