//! Gathering the facts about a site (I/O): Slurm through the `Slurm`
//! trait, this host's addresses, and a probe job on a compute node.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::facts::{Address, Facts, ProbeOutcome};
use super::probe::{Findings, Listener, TOKEN_ENV};
use crate::config::{JobOptions, JobSpec, Memory, PoolOptions, Walltime};
use crate::scheduler::Bind;
use crate::slurm::{JobRef, Slurm, SlurmError, SubmitOptions};

/// How the doctor goes about it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether to run the probe job.
    pub probe: bool,
    /// How long the probe job may take, queue included.
    pub probe_timeout: Duration,
}

/// The facts about the site `spec` and `pool` describe, reached through
/// `slurm` (or the reason it could not be reached).
pub async fn examine(
    job: &JobOptions,
    pool: &PoolOptions,
    slurm: Result<Arc<dyn Slurm>, SlurmError>,
    options: &Options,
) -> Result<Facts, crate::config::SpecError> {
    let spec = job.clone().build()?;
    let slurm = match slurm {
        Ok(s) => s,
        Err(e) => return Ok(unreached(e.to_string())),
    };
    let script = crate::script::render(&spec).map_err(|e| e.to_string());
    let (site, partitions, limits, verdict, routed) = tokio::join!(
        slurm.site(),
        slurm.partitions(),
        slurm.user_limits(),
        async {
            match &script {
                Ok(s) => slurm.test_submit(s).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            }
        },
        crate::cluster::network::routed(slurm.as_ref(), spec.queue.as_deref()),
    );
    let (routed, no_route) = match routed {
        Ok((ip, why)) => (
            Some(Address {
                ip,
                interface: crate::net::interface_of(ip),
                why,
            }),
            String::new(),
        ),
        Err(why) => (None, why),
    };
    let bind = Bind::for_pool(pool, spec.interface.as_deref());
    let address = address(&bind, routed.as_ref(), &no_route);
    let differences = match &site {
        Ok(site) => site
            .version
            .as_deref()
            .and_then(crate::slurm::dialect::Release::parse)
            .map(|release| slurm.differences(release))
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut facts = Facts {
        backend: slurm.describe(),
        differences,
        site: site.map_err(|e| e.to_string()),
        partitions: partitions.map_err(|e| e.to_string()),
        limits: limits.map_err(|e| e.to_string()),
        verdict,
        address,
        routed,
        probe: ProbeOutcome::NotRun("--no-probe".into()),
    };
    facts.probe = match (&facts.verdict, &facts.address, options.probe) {
        (_, _, false) => ProbeOutcome::NotRun("not asked for (--no-probe)".into()),
        (Ok(v), Ok(a), true) if v.accepted => {
            probe(job, &spec, a.ip, slurm.as_ref(), options.probe_timeout).await
        }
        (_, Err(_), true) => ProbeOutcome::NotRun("no address to call back to".into()),
        _ => ProbeOutcome::NotRun("Slurm refuses the job (see job script)".into()),
    };
    Ok(facts)
}

/// The facts when Slurm could not be reached at all.
fn unreached(why: String) -> Facts {
    Facts {
        backend: "the settings given".into(),
        differences: Vec::new(),
        site: Err(why.clone()),
        partitions: Err(why.clone()),
        limits: Err(why.clone()),
        verdict: Err(why),
        address: Err("Slurm not reached".into()),
        routed: None,
        probe: ProbeOutcome::NotRun("Slurm not reached".into()),
    }
}

/// Where a pool's scheduler would listen, as it would choose (`no_route`:
/// why no address routes to the nodes, if none does).
fn address(bind: &Bind, routed: Option<&Address>, no_route: &str) -> Result<Address, String> {
    match bind {
        Bind::Interface(name) => crate::net::interface_ipv4(name)
            .map(|ip| Address {
                ip: IpAddr::V4(ip),
                interface: Some(name.clone()),
                why: "the interface named (scheduler-interface, else the workers' interface)".into(),
            })
            .map_err(|e| format!("the scheduler would listen on `{name}`, but {e}")),
        Bind::Host(ip) => Ok(Address {
            ip: *ip,
            interface: crate::net::interface_of(*ip),
            why: "scheduler-host".into(),
        }),
        Bind::Auto => match routed {
            Some(r) => Ok(r.clone()),
            None => crate::net::host_address()
                .map(|ip| Address {
                    ip,
                    interface: crate::net::interface_of(ip),
                    why: format!("the host name's address ({no_route})"),
                })
                .ok_or_else(|| format!("no address: {no_route}, and the host name resolves to none; name scheduler-interface or scheduler-host")),
        },
    }
}

/// The probe's job: the user's (partition, account, QOS, constraints,
/// prologue), made as small and short as a job can be.
fn probe_job(job: &JobOptions, name: &str) -> Result<JobSpec, crate::config::SpecError> {
    let small = JobOptions::new()
        .cores(1u32)
        .processes(1u32)
        .nodes(1u32)
        .job_cpu(1u32)
        .memory(Memory::from_mib(256))
        .job_mem(Memory::from_mib(256))
        .walltime(Walltime::from_mins(2))
        .job_name(name.to_string());
    job.clone().overlay(small).build()
}

/// Runs the probe job and waits for its call back, its end, or the timeout.
async fn probe(
    job: &JobOptions,
    spec: &JobSpec,
    ip: IpAddr,
    slurm: &dyn Slurm,
    timeout: Duration,
) -> ProbeOutcome {
    let mut secret = [0u8; 16];
    if getrandom::fill(&mut secret).is_err() {
        return ProbeOutcome::NotRun("no randomness for the probe's token".into());
    }
    let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("drover-doctor-{}", &token[..8]);
    let listener = match Listener::bind(ip, token.clone()).await {
        Ok(l) => l,
        Err(e) => return ProbeOutcome::NotRun(format!("cannot listen on {ip}: {e}")),
    };
    let (spec, script) = match probe_job(job, &name)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            let target = listener.addr().map_err(|e| e.to_string())?;
            let mut argv = vec![
                s.drover_bin.display().to_string(),
                "probe".into(),
                "--connect".into(),
                target.to_string(),
            ];
            if let Some(i) = &spec.interface {
                argv.extend(["--interface".into(), i.clone()]);
            }
            let command =
                shlex::try_join(argv.iter().map(String::as_str)).map_err(|e| e.to_string())?;
            let script =
                crate::script::render_with_command(&s, command).map_err(|e| e.to_string())?;
            Ok((s, script))
        }) {
        Ok(x) => x,
        Err(e) => return ProbeOutcome::NotRun(format!("cannot make the probe job: {e}")),
    };
    if let Err(e) = spec.ensure_log_directory() {
        return ProbeOutcome::NotRun(format!(
            "cannot create {}: {e}",
            spec.log_directory.display()
        ));
    }
    let options = SubmitOptions {
        env: vec![(TOKEN_ENV.into(), token)],
        ..Default::default()
    };
    let id = match slurm.submit(&script, &options).await {
        Ok(id) => id,
        Err(e) => return ProbeOutcome::NotRun(format!("the probe job was refused: {e}")),
    };
    let job = JobRef::Job(id);
    let outcome = watch(&listener, slurm, &spec, job, timeout).await;
    let _ = slurm.cancel(&[job]).await;
    outcome
}

/// Waits for the probe `job`: its call back, its end, or `timeout`.
async fn watch(
    listener: &Listener,
    slurm: &dyn Slurm,
    spec: &JobSpec,
    job: JobRef,
    timeout: Duration,
) -> ProbeOutcome {
    let start = Instant::now();
    let heard = listener.next();
    tokio::pin!(heard);
    let mut last_reason = None;
    loop {
        tokio::select! {
            findings = &mut heard => return ProbeOutcome::Heard { job, findings, after: start.elapsed() },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let listed = slurm.jobs(Some(&spec.job_name)).await.unwrap_or_default();
        if let Some(info) = listed.iter().find(|j| j.job == job) {
            last_reason = info.reason.clone();
            if !info.state.is_active() {
                // It may have called back just before it ended.
                if let Ok(findings) =
                    tokio::time::timeout(Duration::from_millis(200), &mut heard).await
                {
                    return ProbeOutcome::Heard {
                        job,
                        findings,
                        after: start.elapsed(),
                    };
                }
                let log = spec
                    .log_directory
                    .join(format!("{}-{job}.out", spec.job_name));
                let findings = Findings::from_log(&crate::private_fs::read::tail(&log).text);
                return ProbeOutcome::Ended {
                    job,
                    state: info.state.clone(),
                    exit_code: info.exit_code,
                    findings,
                    log: log.display().to_string(),
                };
            }
        }
        if start.elapsed() >= timeout {
            return ProbeOutcome::Pending {
                job,
                reason: last_reason,
                waited: start.elapsed(),
            };
        }
    }
}
