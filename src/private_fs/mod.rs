//! Files and directories that other users on the machine cannot touch.
//!
//! A cluster's filesystems are shared: another user can create files,
//! links and directories in any directory they may write, under names
//! drover would use. So every file drover writes goes through here:
//!
//! - `PrivateDir` (`dir.rs`): a directory drover writes into is created
//!   0700 (0750 with group access), or, when it exists, checked to be ours
//!   and writable by no one else (the sticky bit aside); files in it are
//!   created through the directory's descriptor with `O_EXCL|O_NOFOLLOW`,
//!   so a planted link or file is never written through.
//! - `create_secret` (`secret.rs`): a file for a secret, 0600, created
//!   afresh.
//! - `read_trusted` (`trusted.rs`): a file whose contents drover obeys
//!   (`drover.toml`, a job script template, a graph) must be ours or
//!   root's, and writable by no one else.
//! - `temp_dir` (`temp.rs`): a temporary directory, 0700 whatever the
//!   umask.
//! - `read` (`read.rs`): every log drover reads back (`drover logs`,
//!   `cluster.logs()`, start-up failures, Dask's log, the status page) is
//!   read bounded, never through a link, never blocking on a FIFO.

mod dir;
pub mod read;
mod secret;
mod temp;
mod trusted;

use std::path::PathBuf;

pub use dir::PrivateDir;
pub use secret::create_secret;
pub use temp::temp_dir;
pub use trusted::{read_trusted, MAX_TRUSTED_BYTES};

use crate::exit::{ExitStatus, FAILURE, USAGE};

/// Who besides the owner may read what drover writes: no one (the
/// default), or the owner's group (for project directories).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Files 0600, directories 0700.
    #[default]
    Private,
    /// Files 0640, directories 0750: the group reads, no one else.
    Group,
}

impl Access {
    /// The mode of a file drover creates.
    pub fn file_mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Group => 0o640,
        }
    }

    /// The mode of a directory drover creates.
    pub fn dir_mode(self) -> u32 {
        match self {
            Access::Private => 0o700,
            Access::Group => 0o750,
        }
    }

    /// Reads `private` or `group`.
    pub fn parse(text: &str) -> Option<Access> {
        match text {
            "private" => Some(Access::Private),
            "group" => Some(Access::Group),
            _ => None,
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Private => "private",
            Access::Group => "group",
        })
    }
}

/// Why a file or directory was not used. Each names the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// It belongs to another user.
    #[error("{what} {} belongs to uid {owner}, not to you (uid {me}): another user may have made it to read or replace what drover keeps there; remove it, or use a path in a directory only you can write", .path.display())]
    NotOurs {
        /// What it is ("directory", "config file"...).
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our uid.
        me: u32,
    },
    /// Others may write it.
    #[error("{what} {} may be changed by others (mode {mode:04o}): `chmod go-w {}`, or use one only you can write", .path.display(), .path.display())]
    OpenToOthers {
        /// What it is.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A name drover would create is already taken by something drover did
    /// not make there: a link, a FIFO, another user's file.
    #[error("{} is already there and is not a file drover made (a link, a FIFO or another user's file): remove it; nothing was written through it", .path.display())]
    Planted {
        /// Where.
        path: PathBuf,
    },
    /// It is not what it must be (a directory, a regular file).
    #[error("{} is not a {expected}", .path.display())]
    NotA {
        /// Where.
        path: PathBuf,
        /// What it must be.
        expected: &'static str,
    },
    /// A file drover obeys is larger than any such file.
    #[error("{} is {size} bytes, more than the {max} a {what} may have", .path.display())]
    TooLarge {
        /// What it is.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The operating system refused.
    #[error("{}: {cause}", .path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Its reason.
        cause: std::io::Error,
    },
}

impl FsError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
        move |cause| FsError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

impl ExitStatus for FsError {
    fn exit_code(&self) -> u8 {
        match self {
            FsError::NotOurs { .. }
            | FsError::OpenToOthers { .. }
            | FsError::Planted { .. }
            | FsError::NotA { .. }
            | FsError::TooLarge { .. } => USAGE,
            FsError::Io { .. } => FAILURE,
        }
    }
}

/// Our effective uid.
pub(crate) fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}
