//! What a site is like, as `drover doctor` asks: Slurm's version and
//! accounting, its partitions' limits, and the limits on the user
//! (associations and QOS). Read from `scontrol show config`, `scontrol
//! show partition -o` and `sacctmgr -nP` here; slurmrestd's answers are
//! read into the same types in `rest::site`. Every figure is optional:
//! `None` is "no limit" or "not said".

use std::time::Duration;

/// Slurm as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteInfo {
    /// Its release, `22.05.8`.
    pub version: Option<String>,
    /// `AccountingStorageType` (`accounting_storage/slurmdbd`), when said.
    pub accounting: Option<String>,
    /// `AccountingStorageEnforce` (`associations,limits,qos`).
    pub enforce: Option<String>,
    /// `MaxArraySize`, when said.
    pub max_array_size: Option<u32>,
}

impl SiteInfo {
    /// Whether jobs are accounted (so `sacct` answers and limits may hold).
    /// Without accounting, 22.05 says `accounting_storage/none` and 24.11
    /// on say `(null)`.
    pub fn accounting_on(&self) -> Option<bool> {
        self.accounting
            .as_deref()
            .map(|a| !a.ends_with("/none") && !a.is_empty() && a != "(null)")
    }

    /// Reads `scontrol show config`.
    pub fn parse(config: &str) -> SiteInfo {
        let mut site = SiteInfo::default();
        for line in config.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_string();
            match key.trim() {
                "SLURM_VERSION" => site.version = Some(value),
                "AccountingStorageType" => site.accounting = Some(value),
                "AccountingStorageEnforce" => site.enforce = Some(value),
                "MaxArraySize" => site.max_array_size = value.parse().ok(),
                _ => {}
            }
        }
        site
    }
}

/// One partition and its limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionInfo {
    pub name: String,
    /// Whether it is where jobs go that name none.
    pub default: bool,
    /// `UP`, `DOWN`, `DRAIN`, `INACTIVE`.
    pub state: String,
    /// The longest time limit a job may have.
    pub max_time: Option<Duration>,
    /// The most nodes one job may have.
    pub max_nodes: Option<u32>,
    /// The most CPUs a job may use on one node.
    pub max_cpus_per_node: Option<u32>,
    /// The most memory a job may have on one node, in MiB.
    pub max_mem_per_node_mib: Option<u64>,
    /// The most memory a job may have per CPU, in MiB.
    pub max_mem_per_cpu_mib: Option<u64>,
    pub total_nodes: u32,
    pub total_cpus: u32,
    /// Accounts allowed (empty: all).
    pub allowed_accounts: Vec<String>,
    /// QOS allowed (empty: all).
    pub allowed_qos: Vec<String>,
}

/// A Slurm figure: `UNLIMITED`, `NONE`, `N/A` and the like are no limit.
fn figure(value: &str) -> Option<u64> {
    value.trim().parse::<u64>().ok()
}

/// A list such as `AllowAccounts=a,b`; `ALL` is no restriction.
fn list(value: &str) -> Vec<String> {
    match value.trim() {
        "ALL" | "" | "(null)" => Vec::new(),
        v => v.split(',').map(str::to_string).collect(),
    }
}

/// A memory figure as `scontrol` prints it (`32000M`, `64G`) in MiB.
fn mebibytes(value: &str) -> Option<u64> {
    let v = value.trim();
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().ok()?;
    match unit {
        "" | "M" => Some(n),
        "G" => n.checked_mul(1024),
        "T" => n.checked_mul(1024 * 1024),
        _ => None,
    }
}

impl PartitionInfo {
    /// Reads `scontrol show partition -o`: one partition per line.
    pub fn parse_all(text: &str) -> Vec<PartitionInfo> {
        text.lines().filter_map(Self::parse_line).collect()
    }

    fn parse_line(line: &str) -> Option<PartitionInfo> {
        let mut p = PartitionInfo::default();
        for field in line.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            match key {
                "PartitionName" => p.name = value.to_string(),
                "Default" => p.default = value == "YES",
                "State" => p.state = value.to_string(),
                "MaxTime" => {
                    p.max_time = value
                        .parse::<crate::config::Walltime>()
                        .ok()
                        .map(|w| w.as_duration())
                }
                "MaxNodes" => p.max_nodes = figure(value).and_then(|n| u32::try_from(n).ok()),
                "MaxCPUsPerNode" => {
                    p.max_cpus_per_node = figure(value).and_then(|n| u32::try_from(n).ok())
                }
                "MaxMemPerNode" => p.max_mem_per_node_mib = mebibytes(value),
                "MaxMemPerCPU" => p.max_mem_per_cpu_mib = mebibytes(value),
                "TotalNodes" => p.total_nodes = figure(value).unwrap_or(0) as u32,
                "TotalCPUs" => p.total_cpus = figure(value).unwrap_or(0) as u32,
                "AllowAccounts" => p.allowed_accounts = list(value),
                "AllowQos" => p.allowed_qos = list(value),
                _ => {}
            }
        }
        (!p.name.is_empty()).then_some(p)
    }
}

/// One of the user's associations: an account it may charge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Association {
    pub account: String,
    /// The partition it is for, if only one.
    pub partition: Option<String>,
    /// QOS it may use.
    pub qos: Vec<String>,
    pub default_qos: Option<String>,
    /// `MaxSubmitJobs`.
    pub max_submit_jobs: Option<u32>,
    /// `MaxJobs`.
    pub max_jobs: Option<u32>,
}

/// A QOS's limits per user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QosLimits {
    pub name: String,
    /// `MaxSubmitJobsPerUser`.
    pub max_submit_jobs_per_user: Option<u32>,
    /// `MaxJobsPerUser`.
    pub max_jobs_per_user: Option<u32>,
}

/// What accounting says the user may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLimits {
    pub user: String,
    pub default_account: Option<String>,
    pub associations: Vec<Association>,
    pub qos: Vec<QosLimits>,
}

fn count(value: &str) -> Option<u32> {
    figure(value).and_then(|n| u32::try_from(n).ok())
}

impl UserLimits {
    /// Reads `sacctmgr -nP show assoc user=U
    /// format=Account,Partition,QOS,DefaultQOS,MaxSubmit,MaxJobs`, `show
    /// user U format=DefaultAccount` and `show qos
    /// format=Name,MaxSubmitPU,MaxJobsPU`.
    pub fn parse(user: &str, assoc: &str, default_account: &str, qos: &str) -> UserLimits {
        let fields = |line: &str| line.split('|').map(str::to_string).collect::<Vec<_>>();
        let associations = assoc
            .lines()
            .map(fields)
            .filter(|f| f.len() >= 6 && !f[0].is_empty())
            .map(|f| Association {
                account: f[0].clone(),
                partition: Some(f[1].clone()).filter(|p| !p.is_empty()),
                qos: f[2]
                    .split(',')
                    .filter(|q| !q.is_empty())
                    .map(str::to_string)
                    .collect(),
                default_qos: Some(f[3].clone()).filter(|q| !q.is_empty()),
                max_submit_jobs: count(&f[4]),
                max_jobs: count(&f[5]),
            })
            .collect();
        let qos = qos
            .lines()
            .map(fields)
            .filter(|f| f.len() >= 3 && !f[0].is_empty())
            .map(|f| QosLimits {
                name: f[0].clone(),
                max_submit_jobs_per_user: count(&f[1]),
                max_jobs_per_user: count(&f[2]),
            })
            .collect();
        UserLimits {
            user: user.to_string(),
            default_account: default_account
                .lines()
                .next()
                .map(|l| l.trim().to_string())
                .filter(|a| !a.is_empty()),
            associations,
            qos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_settings_are_read_from_scontrol_show_config() {
        let text = "AccountingStorageEnforce = associations,limits,qos\nAccountingStorageType   = accounting_storage/slurmdbd\nMaxArraySize            = 5\nSLURM_VERSION           = 22.05.8\n";
        let site = SiteInfo::parse(text);
        assert_eq!(site.version.as_deref(), Some("22.05.8"));
        assert_eq!(site.accounting_on(), Some(true));
        assert_eq!(site.max_array_size, Some(5));
        let off = SiteInfo::parse("AccountingStorageType = accounting_storage/none\n");
        assert_eq!(off.accounting_on(), Some(false));
        // Slurm 24.11 and 26.05 without accounting.
        let off = SiteInfo::parse("AccountingStorageType   = (null)\n");
        assert_eq!(off.accounting_on(), Some(false));
        assert_eq!(SiteInfo::default().accounting_on(), None);
    }

    #[test]
    fn partitions_and_their_limits_are_read() {
        // As the local Slurm prints them.
        let text = "PartitionName=batch AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL Default=YES MaxNodes=UNLIMITED MaxTime=UNLIMITED MaxCPUsPerNode=UNLIMITED Nodes=node[1-2] State=UP TotalCPUs=32 TotalNodes=2 DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n\
                    PartitionName=small AllowAccounts=a,b AllowQos=ALL Default=NO MaxNodes=1 MaxTime=01:00:00 MaxCPUsPerNode=8 State=UP TotalCPUs=16 TotalNodes=1 MaxMemPerNode=64G\n";
        let parts = PartitionInfo::parse_all(text);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].default && parts[0].max_time.is_none() && parts[0].max_nodes.is_none());
        assert_eq!(parts[0].total_cpus, 32);
        let small = &parts[1];
        assert_eq!(small.max_time, Some(Duration::from_secs(3600)));
        assert_eq!(
            (small.max_nodes, small.max_cpus_per_node),
            (Some(1), Some(8))
        );
        assert_eq!(small.max_mem_per_node_mib, Some(65536));
        assert_eq!(small.allowed_accounts, ["a", "b"]);
    }

    #[test]
    fn associations_and_qos_limits_are_read() {
        let l = UserLimits::parse(
            "root",
            "drover||cap4,normal||7|\nroot||normal|||\n",
            "root\n",
            "normal||\ncap4|4|3\n",
        );
        assert_eq!(l.default_account.as_deref(), Some("root"));
        assert_eq!(l.associations[0].qos, ["cap4", "normal"]);
        assert_eq!(l.associations[0].max_submit_jobs, Some(7));
        assert_eq!(l.associations[1].max_submit_jobs, None);
        assert_eq!(l.qos[1].max_submit_jobs_per_user, Some(4));
        assert_eq!(l.qos[1].max_jobs_per_user, Some(3));
    }
}
