//! The scheduler file: how workers and tools find an authenticated
//! scheduler. It holds the token, so it is written atomically, mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ClusterId, Token};
use crate::exit::{ExitStatus, FAILURE, USAGE};

/// The scheduler file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerFile {
    /// Base URL, e.g. `http://10.77.0.1:40123`.
    pub address: String,
    /// The cluster's id.
    pub cluster_id: ClusterId,
    /// The cluster's token.
    pub token: Token,
    /// The scheduler's process id.
    pub pid: u32,
    /// When it started (Unix seconds).
    pub started_at: u64,
    /// The Dask scheduler of a `dask` pool, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask: Option<DaskEndpoint>,
}

/// Where a pool's Dask scheduler listens: what Dask workers and clients
/// connect to, and the HTTP endpoint drover reads it through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskEndpoint {
    /// Its comm address, e.g. `tcp://10.77.0.1:8786` (`DASK_SCHEDULER_ADDRESS`).
    pub address: String,
    /// Its HTTP base URL, e.g. `http://10.77.0.1:8787`.
    pub http: String,
    /// Dask's own scheduler file, for `Client(scheduler_file=...)`.
    pub scheduler_file: PathBuf,
}

/// A scheduler file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerFileError {
    /// It could not be read (missing, unreadable).
    #[error("cannot read scheduler file {}: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
    /// It is not a drover scheduler file.
    #[error("scheduler file {} is not valid: {message} (expected JSON with address, cluster_id, token, pid, started_at, as `drover scheduler` writes it)", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// It could not be written.
    #[error("cannot write scheduler file {}: {cause}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason, kept for the message.
        cause: std::io::Error,
    },
}

impl ExitStatus for SchedulerFileError {
    fn exit_code(&self) -> u8 {
        match self {
            SchedulerFileError::Read { .. } | SchedulerFileError::Invalid { .. } => USAGE,
            SchedulerFileError::Write { .. } => FAILURE,
        }
    }
}

impl SchedulerFile {
    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<SchedulerFile, SchedulerFileError> {
        let text = std::fs::read_to_string(path).map_err(|cause| SchedulerFileError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let file: SchedulerFile =
            serde_json::from_str(&text).map_err(|e| SchedulerFileError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if !file.address.starts_with("http://") {
            return Err(SchedulerFileError::Invalid {
                path: path.to_path_buf(),
                message: format!("address `{}` is not an http:// URL", file.address),
            });
        }
        Ok(file)
    }

    /// Writes the file atomically (a temporary file renamed into place),
    /// readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), SchedulerFileError> {
        let err = |cause| SchedulerFileError::Write {
            path: path.to_path_buf(),
            cause,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("scheduler"),
            std::process::id()
        ));
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            f.write_all(&json).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_file_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/scheduler.json");
        let file = SchedulerFile {
            address: "http://127.0.0.1:1".into(),
            cluster_id: ClusterId::generate(),
            token: Token::generate(),
            pid: 1,
            started_at: 2,
            dask: Some(DaskEndpoint {
                address: "tcp://127.0.0.1:2".into(),
                http: "http://127.0.0.1:3".into(),
                scheduler_file: "/tmp/dask.json".into(),
            }),
        };
        file.write(&path).unwrap();
        assert_eq!(SchedulerFile::read(&path).unwrap(), file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_scheduler_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SchedulerFile::read(&dir.path().join("none.json")).unwrap_err();
        assert_eq!(missing.exit_code(), USAGE);
        assert!(
            missing.to_string().contains("cannot read scheduler file"),
            "{missing}"
        );
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"address\": 3").unwrap();
        let bad = SchedulerFile::read(&path).unwrap_err().to_string();
        assert!(bad.contains("is not valid"), "{bad}");
    }
}
