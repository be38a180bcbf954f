//! `drover job-script`: the worker job script, printed or checked by Slurm.

use std::path::PathBuf;
use std::process::ExitCode;

use drover::config::{ConfigSources, JobOptions};
use drover::slurm::Slurm;

use super::error::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct JobScriptArgs {
    #[command(flatten)]
    job: JobOptions,

    #[command(flatten)]
    slurm: super::slurm_args::SlurmArgs,

    /// Ask Slurm (sbatch --test-only) whether it would accept the job, submitting nothing.
    #[arg(long)]
    check: bool,
}

pub async fn run(config: Option<PathBuf>, args: JobScriptArgs) -> CliResult {
    let sources = ConfigSources::discover(config);
    let spec = sources.job_options(args.job)?.build()?;
    let script = drover::script::render(&spec)?;
    if !args.check {
        print!("{script}");
        return Ok(ExitCode::SUCCESS);
    }
    let pool = sources.pool_options(args.slurm.pool())?;
    let verdict = drover::slurm::connect(&pool)
        .await?
        .test_submit(&script)
        .await
        .context("asking Slurm to check the job script")?;
    println!("{}", verdict.message);
    Ok(if verdict.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
