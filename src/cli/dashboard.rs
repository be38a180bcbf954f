//! `drover dashboard`: a URL that logs a browser in to the pool's status
//! page, once. It asks the scheduler (with the token in the scheduler
//! file) for a one-time code; the URL is the last line printed, so a
//! script can take it with `tail -1`.

use std::path::PathBuf;
use std::process::ExitCode;

use drover::client::SchedulerClient;
use drover::protocol::{paths, SchedulerFile};

use super::error::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The cluster's scheduler file.
    #[arg(long, value_name = "FILE", env = "DROVER_SCHEDULER_FILE")]
    scheduler_file: PathBuf,
}

pub async fn run(args: DashboardArgs) -> CliResult {
    let file = SchedulerFile::read(&args.scheduler_file)?;
    let client = SchedulerClient::from_file(&file);
    let code = client
        .dashboard_code()
        .await
        .context("asking the scheduler for a login code")?;
    if let Some(fingerprint) = &file.certificate {
        println!(
            "the scheduler's certificate is its own: your browser will ask whether to trust it; \
             it is the one whose SHA-256 fingerprint is {fingerprint}"
        );
    }
    if let Some(dask) = &file.dask {
        println!(
            "Dask's own dashboard: {}/status",
            dask.http.trim_end_matches('/')
        );
    }
    println!(
        "open this URL within {} minutes; it logs one browser in, once:",
        code.expires_in_s / 60
    );
    println!(
        "{}{}?code={}",
        file.address.trim_end_matches('/'),
        paths::UI_LOGIN,
        code.code
    );
    Ok(ExitCode::SUCCESS)
}
