//! The flags that say how to reach Slurm, shared by every command that
//! talks to it; they sit on top of `[pool]` and the environment.

use std::path::PathBuf;

use drover::config::{PoolOptions, RestEndpoint, SlurmApi};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmArgs {
    /// How to reach Slurm: `cli` (its commands, default) or `rest` (slurmrestd).
    #[arg(long, value_name = "API", help_heading = "Slurm")]
    pub slurm_api: Option<SlurmApi>,

    /// slurmrestd's address, for --slurm-api rest: https://HOST[:PORT], http:// to a
    /// loopback address, or unix:/PATH (default: SLURMRESTD_URL).
    #[arg(long, value_name = "URL", help_heading = "Slurm")]
    pub slurmrestd: Option<RestEndpoint>,

    /// A file holding slurmrestd's token (mode 600; re-read when it changes),
    /// instead of SLURM_JWT.
    #[arg(long, value_name = "PATH", help_heading = "Slurm")]
    pub slurm_jwt_file: Option<PathBuf>,
}

impl SlurmArgs {
    /// The flags as pool options, for the top layer.
    pub fn pool(&self) -> PoolOptions {
        PoolOptions {
            slurm_api: self.slurm_api,
            slurmrestd: self.slurmrestd.clone(),
            slurm_jwt_file: self.slurm_jwt_file.clone(),
            ..Default::default()
        }
    }
}
