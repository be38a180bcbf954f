//! `drover doctor`: checks a site before a user relies on it. The facts
//! are gathered by the command (Slurm through the `Slurm` trait, the
//! network by a probe job, `probe`); what they mean is decided here, pure
//! (`judge`), and so is the `drover.toml` suggested (`suggest`).

mod facts;
mod gather;
mod judge;
mod network;
pub mod probe;
mod report;
mod suggest;

pub use facts::{Address, Facts, ProbeOutcome};
pub use gather::{examine, Options};
pub use judge::judge;
pub use report::{Check, Report, Verdict};
pub use suggest::suggest;
