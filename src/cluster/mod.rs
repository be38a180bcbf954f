//! `SlurmCluster`: a pool of worker jobs on Slurm that a driver scales up
//! and down. The handle (`handle`) starts an embedded scheduler and a
//! reconcile loop (`pool`): each round looks at Slurm and the scheduler,
//! lets the books (`books`, pure, reading Slurm's listing
//! through `listing`) and the adaptive policy (`adapt`, pure)
//! decide, and acts: submitting (`submit`: job arrays where it can, paced
//! to Slurm's scheduling passes by `pace`),
//! cancelling, retiring. `close` ends every job however the pool ends;
//! `reaper` does it for a driver that died.

mod adapt;
mod allocations;
mod books;
mod budget;
mod cap;
mod close;
mod dask_pool;
mod error;
mod fates;
mod groups;
mod handle;
mod held;
mod job_growth;
mod job_record;
mod listing;
pub(crate) mod network;
mod options;
mod pace;
mod pool;
pub mod reaper;
mod rounds;
mod shape;
mod sizing;
mod start;
mod status;
mod submit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fates;
#[cfg(test)]
mod tests_groups;
#[cfg(test)]
mod tests_limits;

pub use error::ClusterError;
pub use handle::SlurmCluster;
pub use options::{ClusterOptions, Limits};
pub use pool::MAX_JOBS;
pub use start::Group;
