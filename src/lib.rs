//! drover: elastic worker pools on Slurm.
//!
//! The modules follow the data flow: [`config`] (what the user asks for) →
//! [`script`] (the job script it renders to) → [`slurm`] (submitting it) →
//! [`cluster`] (a pool of worker jobs, scaled up and down) ↔ [`scheduler`]
//! ↔ [`worker`] (the control plane: the agent in each job registers with
//! the scheduler over [`protocol`], using [`client`]) → [`tasks`] (the work).
//! [`doctor`] checks a site before a pool relies on it.
//! [`dask`] runs real Dask workers in a pool's jobs; [`net`] finds interface
//! addresses; [`private_fs`] keeps what drover writes and reads from other users; [`tls`] makes each cluster's certificate and pins it; [`ssh`] reaches a login node through OpenSSH for a driver outside the cluster; [`exit`] says which exit status each error stands for.

#![warn(clippy::too_many_lines)]

pub mod accounting;
pub mod client;
pub mod cluster;
pub mod config;
pub mod dask;
pub mod doctor;
pub mod exit;
pub mod journal;
pub mod net;
pub mod private_fs;
pub mod protocol;
pub mod scheduler;
pub mod script;
pub mod slurm;
pub mod ssh;
pub mod tasks;
pub mod tls;
pub mod worker;
