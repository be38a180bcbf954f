//! drover: elastic worker pools on Slurm.
//!
//! The modules follow the data flow: [`config`] (what the user asks for) →
//! [`script`] (the job script it renders to) → [`slurm`] (submitting it) →
//! [`worker`] (the agent inside each job). [`net`] finds interface addresses.

pub mod config;
pub mod net;
pub mod script;
pub mod slurm;
pub mod worker;
