//! What slurmrestd answers, read into drover's terms. Its errors carry
//! Slurm's own words (the same as sbatch prints), which `error::classify`
//! reads as it reads the command-line tools'. A listing with errors is no
//! listing: with slurmctld down, slurmrestd answers 500 and an empty job
//! list, which must not be taken for an empty queue.

use serde::Deserialize;

use crate::slurm::{JobId, NodeAddress, SlurmError};

/// One entry of an answer's `errors`.
#[derive(Debug, Default, Deserialize)]
pub struct RestError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub description: String,
    /// Slurm's errno, under either name the versions use.
    #[serde(default, alias = "error_code")]
    pub error_number: i64,
}

/// The part of every answer that says what went wrong.
#[derive(Debug, Default, Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<RestError>,
}

/// Slurm's `ESLURM_INVALID_JOB_ID`: a job that is no more.
pub const INVALID_JOB_ID: i64 = 2017;
/// Slurm's `ESLURM_JOB_HELD`: said of a job submitted held, which is no error.
const JOB_HELD: i64 = 2042;

/// The errors of an answer (none when it is not JSON with `errors`).
pub fn errors(body: &[u8]) -> Vec<RestError> {
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

/// The errors' words, as one message: Slurm's `error`, and the
/// `description` where it adds to it.
pub fn message(errors: &[RestError]) -> String {
    errors
        .iter()
        .map(|e| match (e.error.is_empty(), e.description.is_empty()) {
            (false, true) => e.error.clone(),
            (true, false) => e.description.clone(),
            _ if e.description.contains(&e.error) => e.description.clone(),
            _ => format!("{}: {}", e.error, e.description),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An answer that is not a success, as a `SlurmError` classified by
/// Slurm's words (or by the status when it gave none).
pub fn failure(command: &str, status: u16, body: &[u8]) -> SlurmError {
    let errors = errors(body);
    let mut words = message(&errors);
    if words.is_empty() {
        words = String::from_utf8_lossy(&body[..body.len().min(500)])
            .trim()
            .to_string();
    }
    match status {
        401 | 403 => SlurmError::Unauthorized {
            message: format!("slurmrestd answered {status} to `{command}`: {words}"),
        },
        _ => SlurmError::failed(command.to_string(), format!("HTTP {status}"), words),
    }
}

/// A submission's answer: the job id. Errors beside an id are notes
/// (a held job "is in held state").
pub fn submitted(command: &str, status: u16, body: &[u8]) -> Result<JobId, SlurmError> {
    #[derive(Deserialize)]
    struct Submitted {
        job_id: Option<u64>,
    }
    let id = serde_json::from_slice::<Submitted>(body)
        .ok()
        .and_then(|s| s.job_id);
    match (status, id) {
        (200, Some(id)) if id > 0 => {
            let notes: Vec<RestError> = errors(body)
                .into_iter()
                .filter(|e| e.error_number != JOB_HELD)
                .collect();
            if !notes.is_empty() {
                tracing::info!(
                    job = id,
                    "slurmrestd notes on the submission: {}",
                    message(&notes)
                );
            }
            Ok(JobId::new(id))
        }
        (200, _) => Err(SlurmError::Unexpected {
            command: command.into(),
            output: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        }),
        _ => Err(failure(command, status, body)),
    }
}

/// A cancellation's answer: a job already gone is cancelled enough, as
/// `scancel` has it.
pub fn cancelled(command: &str, status: u16, body: &[u8]) -> Result<(), SlurmError> {
    if status == 200
        || errors(body)
            .iter()
            .any(|e| e.error_number == INVALID_JOB_ID)
    {
        return Ok(());
    }
    Err(failure(command, status, body))
}

/// One node as `GET .../nodes` lists it.
#[derive(Debug, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(default)]
    pub address: String,
    /// Absent before v0.0.38.
    #[serde(default)]
    pub partitions: Option<Vec<String>>,
}

/// One partition as `GET .../partitions` lists it.
#[derive(Debug, Deserialize)]
pub struct Partition {
    pub name: String,
    #[serde(default)]
    pub nodes: PartitionNodes,
    #[serde(default)]
    pub flags: Vec<String>,
}

/// A partition's nodes: a hostlist up to v0.0.38, `{configured, ...}` in
/// the data_parser's versions.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PartitionNodes {
    Hostlist(String),
    Listed {
        #[serde(default)]
        configured: String,
    },
}

impl Default for PartitionNodes {
    fn default() -> Self {
        PartitionNodes::Hostlist(String::new())
    }
}

impl PartitionNodes {
    fn hostlist(&self) -> &str {
        match self {
            PartitionNodes::Hostlist(h) | PartitionNodes::Listed { configured: h } => h,
        }
    }
}

/// `GET .../nodes`.
pub fn nodes(command: &str, body: &[u8]) -> Result<Vec<Node>, SlurmError> {
    #[derive(Deserialize)]
    struct Nodes {
        #[serde(default)]
        nodes: Vec<Node>,
    }
    parse::<Nodes>(command, body).map(|n| n.nodes)
}

/// `GET .../partitions`.
pub fn partitions(command: &str, body: &[u8]) -> Result<Vec<Partition>, SlurmError> {
    #[derive(Deserialize)]
    struct Partitions {
        #[serde(default)]
        partitions: Vec<Partition>,
    }
    parse::<Partitions>(command, body).map(|p| p.partitions)
}

fn parse<T: serde::de::DeserializeOwned>(command: &str, body: &[u8]) -> Result<T, SlurmError> {
    serde_json::from_slice(body).map_err(|e| SlurmError::Unexpected {
        command: command.into(),
        output: e.to_string(),
    })
}

/// The nodes of `partition` (the default one when `None`) with their
/// addresses, each once.
pub fn node_addresses(
    nodes: &[Node],
    partitions: &[Partition],
    partition: Option<&str>,
) -> Vec<NodeAddress> {
    let chosen = partitions.iter().find(|p| match partition {
        Some(name) => p.name == name,
        None => p.flags.iter().any(|f| f.eq_ignore_ascii_case("default")),
    });
    let Some(chosen) = chosen else {
        // The data_parser's listing says no partition is the default:
        // then any node may be the one.
        if partition.is_none() && partitions.iter().all(|p| p.flags.is_empty()) {
            return nodes.iter().map(NodeAddress::of).collect();
        }
        return Vec::new();
    };
    let members = crate::slurm::hostlist::expand(chosen.nodes.hostlist());
    nodes
        .iter()
        .filter(|n| match &n.partitions {
            Some(parts) => parts.contains(&chosen.name),
            None => members.contains(&n.name),
        })
        .map(NodeAddress::of)
        .collect()
}

impl NodeAddress {
    /// A node's address as listed; its name when it has none.
    fn of(n: &Node) -> NodeAddress {
        NodeAddress {
            name: n.name.clone(),
            address: match n.address.is_empty() {
                true => n.name.clone(),
                false => n.address.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::Refusal;

    #[test]
    fn refusals_keep_slurms_words_and_their_kind() {
        // What slurmrestd 22.05 answered (v0.0.38).
        let body = br#"{"meta":{},"errors":[{"error_code":2000,"error":"Invalid partition name specified"}]}"#;
        let e = submitted("POST /slurm/v0.0.38/job/submit", 500, body).unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Partition));
        assert!(
            e.to_string().contains("Invalid partition name specified"),
            "{e}"
        );
        let cap = br#"{"errors":[{"error_code":2050,"error":"Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"}]}"#;
        let e = submitted("POST", 500, cap).unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Limit));
        assert!(e.is_transient());
        let down = br#"{"errors":[{"error_code":1800,"error":"Unable to contact slurm controller (connect failure)"}]}"#;
        assert!(submitted("POST", 500, down).unwrap_err().is_unreachable());
        assert!(failure("GET", 401, b"Authentication failure").is_unreachable());
    }

    #[test]
    fn a_held_submission_is_a_job_not_an_error() {
        let body = br#"{"errors":[{"error_code":2042,"error":"Job is in held state, pending scheduler release"}],"job_id":15,"step_id":"BATCH"}"#;
        assert_eq!(submitted("POST", 200, body).unwrap(), JobId::new(15));
        assert!(submitted("POST", 200, br#"{"errors":[]}"#).is_err());
    }

    #[test]
    fn cancelling_a_job_that_is_gone_is_done() {
        let gone = br#"{"errors":[{"description":"unable to kill JobId=99999 with signal 9: Invalid job id specified","error_number":2017,"error":"Invalid job id specified","source":"slurm_kill_job"}]}"#;
        assert!(cancelled("DELETE", 500, gone).is_ok());
        let down = br#"{"errors":[{"error_number":1800,"error":"Unable to contact slurm controller (connect failure)"}]}"#;
        assert!(cancelled("DELETE", 500, down).unwrap_err().is_unreachable());
        assert_eq!(
            message(&errors(gone)),
            "unable to kill JobId=99999 with signal 9: Invalid job id specified"
        );
    }

    #[test]
    fn node_addresses_follow_the_partition() {
        let listed = nodes(
            "GET",
            br#"{"nodes":[
            {"name":"node1","address":"10.77.0.11","partitions":["batch","small"]},
            {"name":"node2","address":"10.77.0.12","partitions":["batch","big"]}]}"#,
        )
        .unwrap();
        let parts = partitions(
            "GET",
            br#"{"partitions":[
            {"name":"batch","nodes":"node[1-2]","flags":["default"]},
            {"name":"big","nodes":"node2","flags":[]}]}"#,
        )
        .unwrap();
        let names = |p| {
            node_addresses(&listed, &parts, p)
                .into_iter()
                .map(|n| n.address)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["10.77.0.11", "10.77.0.12"]);
        assert_eq!(names(Some("big")), ["10.77.0.12"]);
        assert!(names(Some("none")).is_empty());
        // v0.0.36 lists nodes without their partitions: the hostlist says.
        let old = nodes(
            "GET",
            br#"{"nodes":[{"name":"node1","address":"a"},{"name":"node2","address":""}]}"#,
        )
        .unwrap();
        let got: Vec<String> = node_addresses(&old, &parts, Some("big"))
            .into_iter()
            .map(|n| n.address)
            .collect();
        assert_eq!(got, ["node2"]);
        // The data_parser's v0.0.42: nodes as an object, no default flag.
        let body = include_bytes!("../fixtures/26.05/rest-partitions-v0.0.42.json");
        let parts = partitions("GET", body).unwrap();
        assert_eq!(parts[2].nodes.hostlist(), "node2");
        let got: Vec<String> = node_addresses(&old, &parts, Some("big"))
            .into_iter()
            .map(|n| n.address)
            .collect();
        assert_eq!(got, ["node2"]);
        let any = node_addresses(&old, &parts, None);
        assert_eq!(any.len(), 2, "no default said: any node");
    }
}
