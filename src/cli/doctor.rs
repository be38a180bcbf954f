//! `drover doctor`: checks a site before a user relies on it, and the
//! hidden `drover probe` its probe job runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use drover::config::Timeout;
use drover::doctor::{self, Report};

use super::error::CliResult;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The job and pool the site is checked for: the same flags as `cluster up`.
    #[command(flatten)]
    pool: super::pool::PoolArgs,

    /// Leave out the probe job (the network and interface checks).
    #[arg(long)]
    no_probe: bool,

    /// How long the probe job may take, its wait in the queue included.
    #[arg(long, value_name = "TIME", default_value = "2m")]
    probe_timeout: Timeout,
}

pub async fn run(config: Option<PathBuf>, args: DoctorArgs) -> CliResult {
    let settings = args.pool.layered(config)?;
    let slurm = drover::slurm::connect(&settings.pool).await;
    let options = doctor::Options {
        probe: !args.no_probe,
        probe_timeout: args.probe_timeout.duration(),
    };
    let facts = doctor::examine(&settings.job, &settings.pool, slurm, &options).await?;
    let spec = settings.job.clone().build()?;
    let report = Report {
        checks: doctor::judge(&spec, &facts),
    };
    // A closed stdout (`| head`) ends the output, not the process.
    use std::io::Write as _;
    let suggested = doctor::suggest(&spec, &settings.pool, &facts);
    let _ = write!(std::io::stdout(), "{report}\n{suggested}");
    Ok(match report.failed() {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Where to call back (the doctor's listener).
    #[arg(long, value_name = "ADDR:PORT")]
    connect: SocketAddr,
    /// The interface workers would register on.
    #[arg(long, value_name = "IFACE")]
    interface: Option<String>,
}

/// Inside the probe job: looks at the node and calls back.
pub async fn probe(args: ProbeArgs) -> CliResult {
    let token = std::env::var(doctor::probe::TOKEN_ENV).unwrap_or_default();
    let findings = doctor::probe::run(args.connect, args.interface, token).await;
    Ok(match findings.connect_error {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(3),
    })
}
