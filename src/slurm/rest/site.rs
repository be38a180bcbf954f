//! The site's facts as slurmrestd answers them (openapi and dbv0.0.36 to
//! v0.0.38), in the types `slurm::site` reads the commands into. In these
//! versions a limit's absence is `null` or `-1`.

use std::time::Duration;

use serde::Deserialize;

use crate::slurm::json_shapes::Number;
use crate::slurm::{Association, PartitionInfo, QosLimits, SlurmError, UserLimits};

/// A figure that may be absent, `null` or negative (no limit).
fn limit<T: TryFrom<i64>>(v: Option<i64>) -> Option<T> {
    v.filter(|n| *n >= 0).and_then(|n| T::try_from(n).ok())
}

fn parse<T: serde::de::DeserializeOwned>(command: &str, body: &[u8]) -> Result<T, SlurmError> {
    serde_json::from_slice(body).map_err(|e| SlurmError::Unexpected {
        command: command.into(),
        output: e.to_string(),
    })
}

/// The release a `ping` answer's `meta` names.
pub fn release(command: &str, body: &[u8]) -> Result<Option<String>, SlurmError> {
    #[derive(Deserialize)]
    struct Ping {
        meta: Meta,
    }
    #[derive(Deserialize)]
    struct Meta {
        /// `Slurm` up to v0.0.38, `slurm` in the data_parser's.
        #[serde(rename = "Slurm", alias = "slurm")]
        slurm: Option<Release>,
    }
    #[derive(Deserialize)]
    struct Release {
        release: Option<String>,
    }
    let ping: Ping = parse(command, body)?;
    Ok(ping.meta.slurm.and_then(|s| s.release))
}

#[derive(Deserialize)]
struct RestPartition {
    name: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    max_time_limit: Option<i64>,
    #[serde(default)]
    maximum_nodes_per_job: Option<i64>,
    #[serde(default)]
    maximum_cpus_per_node: Option<i64>,
    #[serde(default)]
    maximum_memory_per_node: Option<i64>,
    #[serde(default)]
    maximum_memory_per_cpu: Option<i64>,
    #[serde(default)]
    total_nodes: Option<i64>,
    #[serde(default)]
    total_cpus: Option<i64>,
    #[serde(default)]
    allowed_accounts: Option<String>,
    #[serde(default)]
    allowed_qos: Option<String>,
}

fn names(list: Option<String>) -> Vec<String> {
    match list.as_deref().map(str::trim) {
        None | Some("") | Some("ALL") => Vec::new(),
        Some(v) => v.split(',').map(str::to_string).collect(),
    }
}

/// A partition as the data_parser (v0.0.42) lists it: limits nested, as
/// `{set, infinite, number}`, and no flag for the default partition.
#[derive(Deserialize)]
struct Partition42 {
    name: String,
    partition: Partition42State,
    maximums: Partition42Maximums,
    #[serde(default)]
    nodes: Option<Partition42Nodes>,
    #[serde(default)]
    cpus: Option<Partition42Cpus>,
    #[serde(default)]
    accounts: Option<Allowed>,
    #[serde(default)]
    qos: Option<Allowed>,
}

#[derive(Deserialize)]
struct Partition42State {
    #[serde(default)]
    state: Vec<String>,
}

#[derive(Deserialize)]
struct Partition42Maximums {
    time: Option<Number>,
    nodes: Option<Number>,
    cpus_per_node: Option<Number>,
    partition_memory_per_node: Option<Number>,
    partition_memory_per_cpu: Option<Number>,
}

#[derive(Deserialize)]
struct Partition42Nodes {
    #[serde(default)]
    total: i64,
}

#[derive(Deserialize)]
struct Partition42Cpus {
    #[serde(default)]
    total: i64,
}

#[derive(Deserialize)]
struct Allowed {
    #[serde(default)]
    allowed: Option<String>,
}

/// A partition in either form.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyPartition {
    DataParser(Box<Partition42>),
    Openapi(Box<RestPartition>),
}

impl Partition42 {
    fn info(self) -> PartitionInfo {
        let m = &self.maximums;
        // Memory limits of 0 are no limit.
        let memory = |n: Option<Number>| limit::<u64>(n.and_then(Number::value)).filter(|m| *m > 0);
        PartitionInfo {
            default: false,
            state: self
                .partition
                .state
                .first()
                .cloned()
                .unwrap_or_else(|| "UP".into()),
            max_time: limit::<u64>(m.time.and_then(Number::value))
                .map(|m| Duration::from_secs(m * 60)),
            max_nodes: limit(m.nodes.and_then(Number::value)),
            max_cpus_per_node: limit(m.cpus_per_node.and_then(Number::value)),
            max_mem_per_node_mib: memory(m.partition_memory_per_node),
            max_mem_per_cpu_mib: memory(m.partition_memory_per_cpu),
            total_nodes: limit(self.nodes.map(|n| n.total)).unwrap_or(0),
            total_cpus: limit(self.cpus.map(|c| c.total)).unwrap_or(0),
            allowed_accounts: names(self.accounts.and_then(|a| a.allowed)),
            allowed_qos: names(self.qos.and_then(|q| q.allowed)),
            name: self.name,
        }
    }
}

/// `GET .../partitions`, with limits.
pub fn partitions(command: &str, body: &[u8]) -> Result<Vec<PartitionInfo>, SlurmError> {
    #[derive(Deserialize)]
    struct Partitions {
        #[serde(default)]
        partitions: Vec<AnyPartition>,
    }
    let listed: Partitions = parse(command, body)?;
    Ok(listed
        .partitions
        .into_iter()
        .map(|p| match p {
            AnyPartition::DataParser(p) => p.info(),
            AnyPartition::Openapi(p) => p.info(),
        })
        .collect())
}

impl RestPartition {
    fn info(self) -> PartitionInfo {
        let p = self;
        PartitionInfo {
            default: p.flags.iter().any(|f| f.eq_ignore_ascii_case("default")),
            // v0.0.36 says no state; what it lists is up.
            state: p.state.unwrap_or_else(|| "UP".into()).to_ascii_uppercase(),
            max_time: limit::<u64>(p.max_time_limit).map(|m| Duration::from_secs(m * 60)),
            max_nodes: limit(p.maximum_nodes_per_job),
            max_cpus_per_node: limit(p.maximum_cpus_per_node),
            max_mem_per_node_mib: limit(p.maximum_memory_per_node),
            max_mem_per_cpu_mib: limit(p.maximum_memory_per_cpu),
            total_nodes: limit(p.total_nodes).unwrap_or(0),
            total_cpus: limit(p.total_cpus).unwrap_or(0),
            allowed_accounts: names(p.allowed_accounts),
            allowed_qos: names(p.allowed_qos),
            name: p.name,
        }
    }
}

/// `max.jobs` of an association: `total` is `MaxSubmitJobs`, `active` is
/// `MaxJobs` (checked against sacctmgr on Slurm 22.05).
#[derive(Deserialize, Default)]
struct AssocJobs {
    #[serde(default)]
    total: Option<Number>,
    #[serde(default)]
    active: Option<Number>,
}

#[derive(Deserialize, Default)]
struct AssocMax {
    #[serde(default)]
    jobs: AssocJobs,
}

#[derive(Deserialize)]
struct RestAssociation {
    account: String,
    #[serde(default)]
    partition: Option<String>,
    #[serde(default)]
    qos: Vec<String>,
    #[serde(default)]
    default: Option<AssocDefault>,
    #[serde(default)]
    max: AssocMax,
    /// 1 up to v0.0.38, `true` in the data_parser's versions.
    #[serde(default)]
    is_default: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AssocDefault {
    #[serde(default)]
    qos: Option<String>,
}

/// A QOS's `limits.max.jobs`: `per.user` is `MaxSubmitJobsPerUser`,
/// `active_jobs.per.user` is `MaxJobsPerUser`.
#[derive(Deserialize, Default)]
struct QosJobs {
    #[serde(default)]
    per: PerUser,
    #[serde(default)]
    active_jobs: QosActive,
}

#[derive(Deserialize, Default)]
struct QosActive {
    #[serde(default)]
    per: PerUser,
}

#[derive(Deserialize, Default)]
struct PerUser {
    #[serde(default)]
    user: Option<Number>,
}

#[derive(Deserialize)]
struct RestQos {
    name: String,
    #[serde(default)]
    limits: Option<QosLimitsJson>,
}

#[derive(Deserialize, Default)]
struct QosLimitsJson {
    #[serde(default)]
    max: QosMax,
}

#[derive(Deserialize, Default)]
struct QosMax {
    #[serde(default)]
    jobs: QosJobs,
}

/// `GET /slurmdb/.../associations?user=U` and `GET /slurmdb/.../qos`.
pub fn user_limits(
    user: &str,
    (assoc_command, assoc): (&str, &[u8]),
    (qos_command, qos): (&str, &[u8]),
) -> Result<UserLimits, SlurmError> {
    #[derive(Deserialize)]
    struct Associations {
        #[serde(default)]
        associations: Vec<RestAssociation>,
    }
    #[derive(Deserialize)]
    struct Qoses {
        #[serde(default, alias = "qos", rename = "QOS")]
        qos: Vec<RestQos>,
    }
    let assoc: Associations = parse(assoc_command, assoc)?;
    let qos: Qoses = parse(qos_command, qos)?;
    let default_account = assoc
        .associations
        .iter()
        .find(|a| matches!(&a.is_default, Some(d) if d == 1 || d == true))
        .map(|a| a.account.clone());
    Ok(UserLimits {
        user: user.to_string(),
        default_account,
        associations: assoc
            .associations
            .into_iter()
            .map(|a| Association {
                account: a.account,
                partition: a.partition.filter(|p| !p.is_empty()),
                qos: a.qos,
                default_qos: a.default.and_then(|d| d.qos).filter(|q| !q.is_empty()),
                max_submit_jobs: limit(a.max.jobs.total.and_then(Number::value)),
                max_jobs: limit(a.max.jobs.active.and_then(Number::value)),
            })
            .collect(),
        qos: qos
            .qos
            .into_iter()
            .map(|q| {
                let jobs = q.limits.unwrap_or_default().max.jobs;
                QosLimits {
                    name: q.name,
                    max_submit_jobs_per_user: limit(jobs.per.user.and_then(Number::value)),
                    max_jobs_per_user: limit(jobs.active_jobs.per.user.and_then(Number::value)),
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_say_their_limits() {
        // Slurm 22.05's v0.0.38, shortened.
        let body = br#"{"partitions":[{"flags":["default"],"max_time_limit":-1,"maximum_nodes_per_job":-1,"maximum_cpus_per_node":-1,"maximum_memory_per_node":null,"name":"batch","state":"UP","total_cpus":32,"total_nodes":2,"allowed_accounts":"","allowed_qos":""},
            {"flags":[],"max_time_limit":60,"maximum_nodes_per_job":1,"name":"small","state":"UP","total_cpus":16,"total_nodes":1,"allowed_accounts":"a,b"}]}"#;
        let p = partitions("GET", body).unwrap();
        assert!(p[0].default && p[0].max_time.is_none() && p[0].max_nodes.is_none());
        assert_eq!(p[1].max_time, Some(Duration::from_secs(3600)));
        assert_eq!(p[1].max_nodes, Some(1));
        assert_eq!(p[1].allowed_accounts, ["a", "b"]);
    }

    #[test]
    fn partitions_in_the_data_parsers_form_say_their_limits() {
        // What Slurm 26.05's slurmrestd answered (v0.0.42), `meta` cut.
        let body = include_bytes!("../fixtures/26.05/rest-partitions-v0.0.42.json");
        let p = partitions("GET", body).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["batch", "small", "big"]);
        assert!(p.iter().all(|p| !p.default), "v0.0.42 says no default");
        assert_eq!(
            (p[0].state.as_str(), p[0].total_nodes, p[0].total_cpus),
            ("UP", 2, 32)
        );
        assert!(p[0].max_time.is_none() && p[0].max_nodes.is_none());
        assert_eq!(p[0].max_mem_per_node_mib, None, "0 is no limit");
        assert_eq!(p[1].max_time, Some(Duration::from_secs(3600)));
        assert_eq!(p[1].max_nodes, Some(1));
    }

    #[test]
    fn the_release_is_read_from_either_pings_meta() {
        let old = br#"{"meta":{"Slurm":{"release":"22.05.8"}},"pings":[]}"#;
        assert_eq!(release("GET", old).unwrap().as_deref(), Some("22.05.8"));
        let new = br#"{"meta":{"slurm":{"version":{"major":"26","minor":"05","micro":"5"},"release":"26.05.5"}},"pings":[]}"#;
        assert_eq!(release("GET", new).unwrap().as_deref(), Some("26.05.5"));
    }

    #[test]
    fn limits_in_the_data_parsers_form_are_read() {
        // Shortened from Slurm 24.11's v0.0.42.
        let unset = r#"{"set":false,"infinite":true,"number":0}"#;
        let assoc = format!(
            r#"{{"associations":[{{"account":"drover","partition":"","qos":["dq","normal"],"default":{{"qos":""}},"max":{{"jobs":{{"active":{unset},"total":{{"set":true,"infinite":false,"number":7}}}}}},"is_default":true}}]}}"#
        );
        let qos = format!(
            r#"{{"qos":[{{"name":"dq","limits":{{"max":{{"jobs":{{"active_jobs":{{"per":{{"user":{unset}}}}},"per":{{"user":{{"set":true,"infinite":false,"number":4}}}}}}}}}}}}]}}"#
        );
        let l = user_limits(
            "root",
            ("GET a", assoc.as_bytes()),
            ("GET q", qos.as_bytes()),
        )
        .unwrap();
        assert_eq!(l.default_account.as_deref(), Some("drover"));
        assert_eq!(l.associations[0].max_submit_jobs, Some(7));
        assert_eq!(l.associations[0].max_jobs, None);
        assert_eq!(l.qos[0].max_submit_jobs_per_user, Some(4));
        assert_eq!(l.qos[0].max_jobs_per_user, None);
    }

    #[test]
    fn association_and_qos_limits_are_read_where_22_05_puts_them() {
        let assoc = br#"{"associations":[{"account":"drover","partition":null,"qos":["dq","normal"],"default":{"qos":null},"max":{"jobs":{"per":{"count":null},"active":null,"accruing":null,"total":7}},"is_default":0},
            {"account":"root","qos":["normal"],"max":{"jobs":{"total":null}},"is_default":1}]}"#;
        let qos = br#"{"QOS":[{"name":"normal","limits":{"max":{"jobs":{"active_jobs":{"per":{"user":null}},"per":{"user":null}}}}},
            {"name":"dq","limits":{"max":{"jobs":{"active_jobs":{"per":{"account":null,"user":3}},"per":{"account":null,"user":4}}}}}]}"#;
        let l = user_limits("root", ("GET a", assoc), ("GET q", qos)).unwrap();
        assert_eq!(l.default_account.as_deref(), Some("root"));
        assert_eq!(l.associations[0].max_submit_jobs, Some(7));
        assert_eq!(l.associations[1].max_submit_jobs, None);
        assert_eq!(l.qos[1].max_submit_jobs_per_user, Some(4));
        assert_eq!(l.qos[1].max_jobs_per_user, Some(3));
        assert_eq!(l.qos[0].max_submit_jobs_per_user, None);
    }
}
