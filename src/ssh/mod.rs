//! A cluster's login node reached through the system's OpenSSH client, for
//! a driver outside the cluster (a laptop, a notebook server): one master
//! connection per host carries every command and forwarded port of a pool,
//! so the user's `~/.ssh/config` (ProxyJump, keys, agents) applies and a
//! site with two-factor login asks once.

mod error;
mod host;
mod master;

pub use error::SshError;
pub use host::SshHost;
pub use master::{Master, RemoteOutput};
