//! drover: elastic worker pools on Slurm.
//!
//! The modules follow the data flow: [`config`] (what the user asks for) →
//! [`script`] (the job script it renders to) → [`slurm`] (submitting it) →
//! [`scheduler`] ↔ [`worker`] (the control plane: workers in each job
//! register with the scheduler over [`protocol`], using [`client`]).
//! [`cluster`] ties them together: a pool of worker jobs scaled up and down.
//! [`net`] finds interface addresses; [`dask`] runs real Dask workers in
//! a pool's jobs.

pub mod client;
pub mod cluster;
pub mod config;
pub mod dask;
pub mod net;
pub mod protocol;
pub mod scheduler;
pub mod script;
pub mod slurm;
pub mod tasks;
pub mod worker;
