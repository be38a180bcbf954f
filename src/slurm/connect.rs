//! Choosing the backend from the settings: Slurm's commands, or slurmrestd
//! (`slurm-api = "rest"`).

use std::sync::Arc;

use super::{Slurm, SlurmCli, SlurmError, SlurmRest};
use crate::config::{PoolOptions, SlurmApi};

/// The backend `pool` names, not yet asked anything: for a process that
/// must come up whatever Slurm's state (the orphan watcher).
pub fn backend(pool: &PoolOptions) -> Result<Arc<dyn Slurm>, SlurmError> {
    Ok(match pool.slurm_api.unwrap_or_default() {
        SlurmApi::Cli => Arc::new(SlurmCli::for_pool(pool)),
        SlurmApi::Rest => Arc::new(SlurmRest::for_pool(pool)?),
    })
}

/// The backend `pool` names, ready: slurmrestd has been reached and an API
/// version agreed, so a wrong address, token or version is reported now,
/// before anything is submitted.
pub async fn connect(pool: &PoolOptions) -> Result<Arc<dyn Slurm>, SlurmError> {
    match pool.slurm_api.unwrap_or_default() {
        SlurmApi::Cli => backend(pool),
        SlurmApi::Rest => {
            let rest = SlurmRest::for_pool(pool)?;
            rest.version().await?;
            Ok(Arc::new(rest))
        }
    }
}
