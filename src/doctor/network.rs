//! The network checks of `drover doctor` (pure): the address the
//! scheduler would listen on, and what the probe job found from a
//! compute node: whether it reached that address, and the interface named.

use super::facts::{Address, Facts, ProbeOutcome};
use super::probe::Findings;
use super::report::check;
use super::{Check, Verdict};
use crate::config::JobSpec;
use crate::slurm::{JobRef, JobState};

pub(super) fn address(address: &Result<Address, String>, routed: Option<&Address>) -> Check {
    match address {
        Ok(a) => {
            let on = a
                .interface
                .as_deref()
                .map_or(String::new(), |i| format!(" on {i}"));
            check(
                "scheduler address",
                Verdict::Pass,
                format!("{}{on}: {}", a.ip, a.why),
                None,
            )
        }
        Err(e) => check(
            "scheduler address",
            Verdict::Fail,
            e.clone(),
            routed.map(scheduler_fix),
        ),
    }
}

/// The setting that puts the scheduler where the nodes route to.
fn scheduler_fix(routed: &Address) -> String {
    match &routed.interface {
        Some(i) => format!(
            "scheduler-interface = \"{i}\" (this host's {} routes to the nodes)",
            routed.ip
        ),
        None => format!(
            "scheduler-host = \"{}\" (it routes to the nodes)",
            routed.ip
        ),
    }
}

pub(super) fn probe(spec: &JobSpec, facts: &Facts) -> Vec<Check> {
    let skip = |why: &str| {
        vec![
            check("network", Verdict::Skip, why.to_string(), None),
            check("interface", Verdict::Skip, why.to_string(), None),
        ]
    };
    match &facts.probe {
        ProbeOutcome::NotRun(why) => skip(why),
        ProbeOutcome::Pending {
            job,
            reason,
            waited,
        } => {
            let why = format!(
                "probe job {job} still waited after {}s ({})",
                waited.as_secs(),
                reason.as_deref().unwrap_or("no reason given")
            );
            let mut checks = skip(&why);
            checks[0].verdict = Verdict::Warn;
            checks
        }
        ProbeOutcome::Heard {
            job,
            findings,
            after,
        } => {
            let from = findings.source.as_deref().unwrap_or("?");
            let net = check(
                "network",
                Verdict::Pass,
                format!(
                    "{} (probe job {job}) reached {} from {from} in {:.1}s",
                    findings.hostname,
                    findings.target,
                    after.as_secs_f64()
                ),
                None,
            );
            vec![net, interface(spec, findings)]
        }
        ProbeOutcome::Ended {
            job,
            state,
            exit_code,
            findings,
            log,
        } => ended(spec, facts, *job, state, *exit_code, findings.as_ref(), log),
    }
}

fn ended(
    spec: &JobSpec,
    facts: &Facts,
    job: JobRef,
    state: &JobState,
    exit: Option<i32>,
    findings: Option<&Findings>,
    log: &str,
) -> Vec<Check> {
    let code = exit.map_or(String::new(), |c| format!(" (exit code {c})"));
    let Some(f) = findings else {
        let detail = format!("probe job {job} ended {state}{code} without calling back, and its log {log} says nothing here");
        let fix = "the nodes must see the log directory and the drover executable: put both on a filesystem they share (log-directory)".to_string();
        return vec![
            check("network", Verdict::Fail, detail, Some(fix)),
            check(
                "interface",
                Verdict::Skip,
                "the probe did not run".into(),
                None,
            ),
        ];
    };
    let why = f.connect_error.as_deref().unwrap_or("it did not call back");
    let detail = format!(
        "{} (probe job {job}) could not reach {}: {why}",
        f.hostname, f.target
    );
    let fix = facts.routed.as_ref().filter(|r| facts.address.as_ref().map_or(true, |a| a.ip != r.ip)).map(scheduler_fix)
        .or_else(|| Some("a firewall or route keeps the nodes from this host: ask for the address they reach it at (scheduler-host)".into()));
    vec![
        check("network", Verdict::Fail, detail, fix),
        interface(spec, f),
    ]
}

fn interface(spec: &JobSpec, f: &Findings) -> Check {
    let Some(name) = &spec.interface else {
        let left = f
            .source
            .as_deref()
            .map_or(String::new(), |s| format!("; the probe left from {s}"));
        return check("interface", Verdict::Pass, format!("none named: workers register with the address their node reaches the scheduler from{left}"), None);
    };
    match &f.interface_address {
        Some(a) => check(
            "interface",
            Verdict::Pass,
            format!("{} has {name} ({a})", f.hostname),
            None,
        ),
        None => {
            let fix = f
                .source
                .as_ref()
                .and_then(|s| f.interfaces.iter().find(|(_, a)| a == s))
                .or_else(|| f.interfaces.iter().find(|(n, _)| n != "lo"));
            check(
                "interface",
                Verdict::Fail,
                format!(
                    "{} has no IPv4 address on `{name}`; it has: {}",
                    f.hostname,
                    f.interface_list()
                ),
                fix.map(|(n, _)| format!("interface = \"{n}\"")),
            )
        }
    }
}
