//! What the facts about a site mean for the pool a user would run there
//! (pure): one check each, with its verdict and, when it is not a pass,
//! what to change.

use super::facts::Facts;
use super::report::check;
use super::{Check, Verdict};
use crate::config::{JobSpec, Memory, Walltime};
use crate::slurm::{Association, PartitionInfo, SiteInfo, TestVerdict, UserLimits};

/// Every check, in the order a user reads them.
pub fn judge(spec: &JobSpec, facts: &Facts) -> Vec<Check> {
    let mut checks = vec![slurm(facts), release(facts), accounting(&facts.site)];
    checks.push(partition(spec, &facts.partitions));
    checks.push(limits(spec, &facts.site, &facts.limits));
    checks.push(job_script(&facts.verdict));
    checks.push(super::network::address(
        &facts.address,
        facts.routed.as_ref(),
    ));
    checks.extend(super::network::probe(spec, facts));
    checks
}

fn slurm(facts: &Facts) -> Check {
    match &facts.site {
        Ok(site) => {
            let version = site.version.as_deref().unwrap_or("of an unknown version");
            check("slurm", Verdict::Pass, format!("reached through {}: Slurm {version}", facts.backend), None)
        }
        Err(e) => check(
            "slurm",
            Verdict::Fail,
            format!("not reached through {}: {e}", facts.backend),
            Some("`sinfo` must answer here (SLURM_CONF, munge), or give slurm-api = \"rest\" with slurmrestd's address and a token".into()),
        ),
    }
}

/// What drover does differently on this Slurm release, so a user who
/// compares two sites sees why (the readers differ, not the pool).
fn release(facts: &Facts) -> Check {
    let version = facts.site.as_ref().ok().and_then(|s| s.version.as_deref());
    match (version, facts.differences.is_empty()) {
        (Some(version), false) => check(
            "release",
            Verdict::Pass,
            format!("Slurm {version}: {}", facts.differences.join("; ")),
            None,
        ),
        (Some(version), true) => check(
            "release",
            Verdict::Skip,
            format!("Slurm {version}: a version drover cannot read as a release"),
            None,
        ),
        (None, _) => check(
            "release",
            Verdict::Skip,
            "Slurm's version not known".into(),
            None,
        ),
    }
}

fn accounting(site: &Result<SiteInfo, String>) -> Check {
    let site = match site {
        Ok(s) => s,
        Err(_) => {
            return check(
                "accounting",
                Verdict::Skip,
                "Slurm not reached".into(),
                None,
            )
        }
    };
    match site.accounting_on() {
        Some(true) => {
            let enforce = site.enforce.as_deref().unwrap_or("not said");
            check("accounting", Verdict::Pass, format!("on ({}; enforced: {enforce}): accounts and limits are checked, sacct keeps how jobs ended", site.accounting.as_deref().unwrap_or_default()), None)
        }
        Some(false) => check(
            "accounting",
            Verdict::Pass,
            "off: no account or QOS is checked, and sacct knows no job".into(),
            None,
        ),
        None => check(
            "accounting",
            Verdict::Skip,
            "not said by this API".into(),
            None,
        ),
    }
}

/// The partition the job goes to: the one named, else the default.
fn chosen<'a>(spec: &JobSpec, parts: &'a [PartitionInfo]) -> Option<&'a PartitionInfo> {
    match &spec.queue {
        Some(q) => parts.iter().find(|p| &p.name == q),
        None => parts.iter().find(|p| p.default),
    }
}

fn partition_names(parts: &[PartitionInfo]) -> String {
    parts
        .iter()
        .map(|p| match p.default {
            true => format!("{} (default)", p.name),
            false => p.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn partition(spec: &JobSpec, parts: &Result<Vec<PartitionInfo>, String>) -> Check {
    let parts = match parts {
        Ok(p) => p,
        Err(e) => {
            return check(
                "partition",
                Verdict::Fail,
                format!("cannot list partitions: {e}"),
                None,
            )
        }
    };
    if spec.queue.is_none() && !parts.iter().any(|p| p.default) {
        // slurmrestd's data_parser versions list no default flag.
        return check(
            "partition",
            Verdict::Skip,
            format!(
                "this API does not say which partition is the default, where Slurm puts the job; partitions: {}",
                partition_names(parts)
            ),
            None,
        );
    }
    let Some(p) = chosen(spec, parts) else {
        let asked = spec.queue.as_deref().unwrap_or("(the default)");
        let fix = parts
            .iter()
            .find(|p| p.default)
            .or(parts.first())
            .map(|p| format!("queue = \"{}\"", p.name));
        return check(
            "partition",
            Verdict::Fail,
            format!(
                "no partition {asked}; partitions: {}",
                partition_names(parts)
            ),
            fix,
        );
    };
    if let Some((problem, fix)) = partition_problem(spec, p) {
        return check(
            "partition",
            Verdict::Fail,
            format!("{}: {problem}", p.name),
            Some(fix),
        );
    }
    let time = p.max_time.map_or("no time limit".to_string(), |t| {
        format!(
            "time limit {}",
            Walltime::from_secs(t.as_secs()).unwrap_or(Walltime::from_mins(0))
        )
    });
    let memory = p.max_mem_per_node_mib.map_or(String::new(), |m| {
        format!(", at most {} per node", Memory::from_mib(m).human())
    });
    check(
        "partition",
        Verdict::Pass,
        format!(
            "{}: {}, {} nodes, {} CPUs, {time}{memory}",
            p.name, p.state, p.total_nodes, p.total_cpus
        ),
        None,
    )
}

/// What about the job the partition will not take, and the change.
fn partition_problem(spec: &JobSpec, p: &PartitionInfo) -> Option<(String, String)> {
    if !p.state.starts_with("UP") {
        return Some((
            format!("it is {}: its jobs do not start", p.state),
            "queue = \"<a partition that is UP>\"".into(),
        ));
    }
    if let Some(max) = p.max_time.filter(|m| spec.walltime.as_duration() > *m) {
        let max = Walltime::from_secs(max.as_secs()).unwrap_or(Walltime::from_mins(0));
        return Some((format!("walltime {} is above its time limit {max}: the jobs would wait for ever (PartitionTimeLimit)", spec.walltime), format!("walltime = \"{max}\"")));
    }
    if let Some(max) = p.max_nodes.filter(|m| spec.nodes > *m) {
        return Some((
            format!("{} nodes per job, above its MaxNodes {max}", spec.nodes),
            format!("nodes = {max}"),
        ));
    }
    if let Some(max) = p.max_cpus_per_node.filter(|m| spec.job_cpu > *m) {
        return Some((
            format!(
                "{} CPUs per node, above its MaxCPUsPerNode {max}",
                spec.job_cpu
            ),
            format!("cores = {max}"),
        ));
    }
    if let Some(max) = p
        .max_mem_per_node_mib
        .filter(|m| spec.job_mem.mib_ceil() > *m)
    {
        let max = Memory::from_mib(max).human();
        return Some((
            format!(
                "{} per job, above its MaxMemPerNode {max}",
                spec.job_mem.human()
            ),
            format!("memory = \"{max}\""),
        ));
    }
    if let Some(a) = spec
        .account
        .as_ref()
        .filter(|a| !p.allowed_accounts.is_empty() && !p.allowed_accounts.contains(a))
    {
        return Some((
            format!(
                "account {a} may not use it (AllowAccounts={})",
                p.allowed_accounts.join(",")
            ),
            format!("account = \"{}\"", p.allowed_accounts[0]),
        ));
    }
    if let Some(q) = spec
        .qos
        .as_ref()
        .filter(|q| !p.allowed_qos.is_empty() && !p.allowed_qos.contains(q))
    {
        return Some((
            format!(
                "QOS {q} may not use it (AllowQos={})",
                p.allowed_qos.join(",")
            ),
            format!("qos = \"{}\"", p.allowed_qos[0]),
        ));
    }
    None
}

/// The association the job charges: its account's (for its partition if
/// one is only for it).
fn association<'a>(
    spec: &JobSpec,
    limits: &'a UserLimits,
    account: &str,
) -> Option<&'a Association> {
    let mine = limits.associations.iter().filter(|a| a.account == account);
    let for_partition = mine
        .clone()
        .find(|a| a.partition.is_some() && a.partition == spec.queue);
    for_partition.or_else(|| {
        limits
            .associations
            .iter()
            .find(|a| a.account == account && a.partition.is_none())
    })
}

fn least(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The account, association and QOS the job would charge, or the check
/// that fails because the user may not.
fn charged<'a>(
    spec: &JobSpec,
    limits: &'a UserLimits,
) -> Result<(String, &'a Association, String), Check> {
    let Some(account) = spec.account.clone().or(limits.default_account.clone()) else {
        return Err(check(
            "limits",
            Verdict::Fail,
            format!("user {} has no default account", limits.user),
            Some("account = \"<one of your accounts>\"".into()),
        ));
    };
    let accounts: Vec<&str> = limits
        .associations
        .iter()
        .map(|a| a.account.as_str())
        .collect();
    let Some(assoc) = association(spec, limits, &account) else {
        return Err(check(
            "limits",
            Verdict::Fail,
            format!(
                "user {} may not charge account {account}; accounts: {}",
                limits.user,
                accounts.join(", ")
            ),
            accounts.first().map(|a| format!("account = \"{a}\"")),
        ));
    };
    let qos = spec
        .qos
        .clone()
        .or(assoc.default_qos.clone())
        .unwrap_or_else(|| "normal".into());
    if !assoc.qos.is_empty() && !assoc.qos.contains(&qos) {
        return Err(check(
            "limits",
            Verdict::Fail,
            format!(
                "QOS {qos} is not allowed with account {account}; allowed: {}",
                assoc.qos.join(", ")
            ),
            Some(format!("qos = \"{}\"", assoc.qos[0])),
        ));
    }
    Ok((account, assoc, qos))
}

fn limits(
    spec: &JobSpec,
    site: &Result<SiteInfo, String>,
    limits: &Result<Option<UserLimits>, String>,
) -> Check {
    let arrays = site
        .as_ref()
        .ok()
        .and_then(|s| s.max_array_size)
        .map_or(String::new(), |n| {
            format!("; arrays of at most {n} tasks (MaxArraySize)")
        });
    if site.as_ref().ok().and_then(SiteInfo::accounting_on) == Some(false) {
        return check(
            "limits",
            Verdict::Pass,
            format!("none: accounting is off, so no association or QOS limit holds{arrays}"),
            None,
        );
    }
    let limits = match limits {
        Err(e) => {
            return check(
                "limits",
                Verdict::Warn,
                format!("cannot read accounting's limits: {e}{arrays}"),
                None,
            )
        }
        Ok(None) => {
            return check(
                "limits",
                Verdict::Pass,
                format!("accounting sets none{arrays}"),
                None,
            )
        }
        Ok(Some(l)) => l,
    };
    let (account, assoc, qos) = match charged(spec, limits) {
        Ok(c) => c,
        Err(failed) => return failed,
    };
    let q = limits.qos.iter().find(|l| l.name == qos);
    let submit = least(
        assoc.max_submit_jobs,
        q.and_then(|q| q.max_submit_jobs_per_user),
    );
    let running = least(assoc.max_jobs, q.and_then(|q| q.max_jobs_per_user));
    let mut detail = format!("account {account}, QOS {qos}");
    match submit {
        Some(n) => detail.push_str(&format!(
            "; at most {n} jobs submitted at once: a larger pool waits at {n} jobs, and says so"
        )),
        None => detail.push_str("; no cap on submitted jobs"),
    }
    if let Some(n) = running {
        detail.push_str(&format!("; at most {n} running"));
    }
    detail.push_str(&arrays);
    check("limits", Verdict::Pass, detail, None)
}

fn job_script(verdict: &Result<TestVerdict, String>) -> Check {
    match verdict {
        Ok(v) if v.accepted => check(
            "job script",
            Verdict::Pass,
            format!("accepted: {}", v.message.trim()),
            None,
        ),
        Ok(v) => check(
            "job script",
            Verdict::Fail,
            format!("refused: {}", v.message.trim()),
            Some("change what Slurm names (partition, account, QOS, size) in [job]".into()),
        ),
        Err(e) => check(
            "job script",
            Verdict::Fail,
            format!("no verdict: {e}"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::facts::{Address, ProbeOutcome};
    use super::super::probe::Findings;
    use super::*;
    use crate::slurm::{JobRef, JobState};

    fn spec(job: crate::config::JobOptions) -> JobSpec {
        job.build().unwrap()
    }

    fn part(name: &str, default: bool, max_time: Option<u64>) -> PartitionInfo {
        PartitionInfo {
            name: name.into(),
            default,
            state: "UP".into(),
            max_time: max_time.map(Duration::from_secs),
            total_nodes: 2,
            total_cpus: 32,
            ..Default::default()
        }
    }

    fn facts() -> Facts {
        let here = Address {
            ip: "10.77.0.1".parse().unwrap(),
            interface: Some("drvbr0".into()),
            why: "routes to the nodes".into(),
        };
        Facts {
            backend: "Slurm's commands".into(),
            differences: crate::slurm::dialect::commands(
                crate::slurm::dialect::Release::parse("22.05.8").unwrap(),
            ),
            site: Ok(SiteInfo {
                version: Some("22.05.8".into()),
                accounting: Some("accounting_storage/slurmdbd".into()),
                ..Default::default()
            }),
            partitions: Ok(vec![
                part("batch", true, None),
                part("small", false, Some(3600)),
            ]),
            limits: Ok(None),
            verdict: Ok(TestVerdict {
                accepted: true,
                message: "ok".into(),
            }),
            address: Ok(here.clone()),
            routed: Some(here),
            probe: ProbeOutcome::NotRun("test".into()),
        }
    }

    fn findings(interface: Option<&str>, error: Option<&str>) -> Findings {
        Findings {
            hostname: "node1".into(),
            interfaces: vec![
                ("lo".into(), "127.0.0.1".into()),
                ("ib0".into(), "10.77.0.11".into()),
            ],
            interface: interface.map(Into::into),
            interface_address: interface
                .filter(|i| *i == "ib0")
                .map(|_| "10.77.0.11".into()),
            target: "127.0.0.1:4000".into(),
            connect_error: error.map(Into::into),
            source: error.is_none().then(|| "10.77.0.11".into()),
            ..Default::default()
        }
    }

    fn get<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_partition_that_does_not_exist_or_is_too_short_fails_with_the_fix() {
        let checks = judge(
            &spec(crate::config::JobOptions::new().queue("nosuch")),
            &facts(),
        );
        let p = get(&checks, "partition");
        assert_eq!(p.verdict, Verdict::Fail);
        assert!(
            p.detail.contains("partitions: batch (default), small"),
            "{p:?}"
        );
        assert_eq!(p.fix.as_deref(), Some("queue = \"batch\""));
        let long = crate::config::JobOptions::new()
            .queue("small")
            .walltime("2h".parse::<Walltime>().unwrap());
        let p = get(&judge(&spec(long), &facts()), "partition").clone();
        assert!(p.detail.contains("above its time limit 01:00:00"), "{p:?}");
        assert_eq!(p.fix.as_deref(), Some("walltime = \"01:00:00\""));
    }

    #[test]
    fn limits_name_the_account_qos_and_the_cap() {
        let mut f = facts();
        f.limits = Ok(Some(UserLimits {
            user: "u".into(),
            default_account: Some("lab".into()),
            associations: vec![Association {
                account: "lab".into(),
                qos: vec!["normal".into(), "cap".into()],
                max_submit_jobs: Some(10),
                ..Default::default()
            }],
            qos: vec![crate::slurm::QosLimits {
                name: "cap".into(),
                max_submit_jobs_per_user: Some(4),
                max_jobs_per_user: None,
            }],
        }));
        let c = get(
            &judge(&spec(crate::config::JobOptions::new().qos("cap")), &f),
            "limits",
        )
        .clone();
        assert!(
            c.detail
                .contains("account lab, QOS cap; at most 4 jobs submitted"),
            "{c:?}"
        );
        let c = get(
            &judge(&spec(crate::config::JobOptions::new().account("other")), &f),
            "limits",
        )
        .clone();
        assert_eq!(c.verdict, Verdict::Fail);
        assert_eq!(c.fix.as_deref(), Some("account = \"lab\""));
        let c = get(
            &judge(&spec(crate::config::JobOptions::new().qos("gold")), &f),
            "limits",
        )
        .clone();
        assert!(c.detail.contains("QOS gold is not allowed"), "{c:?}");
        // Without accounting, sacctmgr fails; that is no limit, not a warning.
        f.site = Ok(SiteInfo::parse("AccountingStorageType = (null)\n"));
        f.limits = Err("sacctmgr: not a supported accounting_storage plugin".into());
        let c = get(
            &judge(&spec(crate::config::JobOptions::new()), &f),
            "limits",
        )
        .clone();
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        assert!(c.detail.contains("accounting is off"), "{c:?}");
    }

    #[test]
    fn a_probe_that_could_not_call_back_points_at_the_routed_address() {
        let mut f = facts();
        f.address = Ok(Address {
            ip: "127.0.0.1".parse().unwrap(),
            interface: Some("lo".into()),
            why: "scheduler-host".into(),
        });
        f.probe = ProbeOutcome::Ended {
            job: JobRef::Job(crate::slurm::JobId::new(7)),
            state: JobState::Failed,
            exit_code: Some(3),
            findings: Some(findings(Some("ib0"), Some("Connection refused"))),
            log: "/l/x-7.out".into(),
        };
        let checks = judge(&spec(crate::config::JobOptions::new().interface("ib0")), &f);
        let n = get(&checks, "network");
        assert_eq!(n.verdict, Verdict::Fail);
        assert!(
            n.detail
                .contains("could not reach 127.0.0.1:4000: Connection refused"),
            "{n:?}"
        );
        assert!(
            n.fix
                .as_deref()
                .unwrap()
                .starts_with("scheduler-interface = \"drvbr0\""),
            "{n:?}"
        );
        assert_eq!(get(&checks, "interface").verdict, Verdict::Pass);
    }

    #[test]
    fn a_missing_interface_is_mended_with_the_one_the_probe_left_from() {
        let mut f = facts();
        f.probe = ProbeOutcome::Heard {
            job: JobRef::Job(crate::slurm::JobId::new(7)),
            findings: findings(Some("eth9"), None),
            after: Duration::from_secs(1),
        };
        let job = crate::config::JobOptions::new().interface("eth9");
        let checks = judge(&spec(job.clone()), &f);
        let i = get(&checks, "interface");
        assert_eq!(i.verdict, Verdict::Fail);
        assert_eq!(i.fix.as_deref(), Some("interface = \"ib0\""));
        let toml = super::super::suggest(&spec(job), &Default::default(), &f);
        assert!(
            toml.contains("interface = \"ib0\"")
                && toml.contains("scheduler-interface = \"drvbr0\""),
            "{toml}"
        );
        assert!(toml::from_str::<toml::Table>(&toml).is_ok(), "{toml}");
    }

    #[test]
    fn slurm_not_reached_fails_first_and_says_how_it_was_tried() {
        let mut f = facts();
        f.site = Err("Unable to contact slurm controller".into());
        let s = get(&judge(&spec(Default::default()), &f), "slurm").clone();
        assert_eq!(s.verdict, Verdict::Fail);
        assert!(
            s.detail
                .contains("not reached through Slurm's commands: Unable to contact"),
            "{s:?}"
        );
    }

    #[test]
    fn the_release_check_says_what_drover_reads_differently_there() {
        let f = facts();
        let r = get(&judge(&spec(Default::default()), &f), "release").clone();
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(r.detail.starts_with("Slurm 22.05.8: "), "{r:?}");
        assert!(r.detail.contains("wait status"), "{r:?}");

        let mut unknown = facts();
        unknown.site = Ok(SiteInfo::default());
        unknown.differences.clear();
        let r = get(&judge(&spec(Default::default()), &unknown), "release").clone();
        assert_eq!(r.verdict, Verdict::Skip);
        assert!(r.detail.contains("not known"), "{r:?}");
    }
}
