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
    /// The fingerprint of the scheduler's certificate, which clients pin;
    /// absent only for a plain-HTTP scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<crate::tls::Fingerprint>,
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
    /// The certificate and key securing it with Dask's TLS, when drover
    /// made them (the certificate is also the authority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DaskTls>,
    /// The secret drover's routes on a Dask scheduler that drover started
    /// want (`/drover/v1/...`); `None` for a scheduler the user started,
    /// which drover reads through Dask's own `/api/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
}

/// PEM files of a cluster's certificate and key, readable by their owner
/// only, for Dask's `--tls-ca-file`, `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaskTls {
    /// The certificate (also the authority: it is self-signed).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl DaskTls {
    /// The arguments that secure a `dask scheduler` or `dask worker`.
    pub fn args(&self) -> Vec<String> {
        let cert = self.cert.display().to_string();
        vec![
            "--tls-ca-file".into(),
            cert.clone(),
            "--tls-cert".into(),
            cert,
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// The environment through which a driver's unchanged `Client()`
    /// connects: Dask's configuration variables.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        let cert = self.cert.display().to_string();
        vec![
            ("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", cert.clone()),
            ("DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT", cert),
            (
                "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
                self.key.display().to_string(),
            ),
            ("DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION", "True".into()),
        ]
    }
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
    /// It belongs to another user, who may have written it.
    #[error("scheduler file {} belongs to uid {owner}, not to you (uid {me}): another user may have made it to point your workers at their server; remove it, or use a path in a directory only you can write", .path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our uid.
        me: u32,
    },
    /// Others may read or change it, and so may have its token.
    #[error("scheduler file {} may be read or changed by others (mode {mode:04o}), and its token with it: `chmod 600` it and start a new cluster, since its token may have been read", .path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
            SchedulerFileError::Read { .. }
            | SchedulerFileError::Invalid { .. }
            | SchedulerFileError::Foreign { .. }
            | SchedulerFileError::Exposed { .. } => USAGE,
            SchedulerFileError::Write { .. } => FAILURE,
        }
    }
}

/// The most a scheduler file is read of.
const MAX_FILE_BYTES: u64 = 64 << 10;

impl SchedulerFile {
    /// Reads the file at `path`, which must be ours and private: a file
    /// another user made or could read is refused, with the fix.
    pub fn read(path: &Path) -> Result<SchedulerFile, SchedulerFileError> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let read_err = |cause| SchedulerFileError::Read {
            path: path.to_path_buf(),
            cause,
        };
        let mut f = std::fs::File::open(path).map_err(read_err)?;
        let meta = f.metadata().map_err(read_err)?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(SchedulerFileError::Foreign {
                path: path.to_path_buf(),
                owner: meta.uid(),
                me,
            });
        }
        if meta.mode() & 0o077 != 0 {
            return Err(SchedulerFileError::Exposed {
                path: path.to_path_buf(),
                mode: meta.mode() & 0o7777,
            });
        }
        // A scheduler file is a few hundred bytes: a huge one is not ours.
        let mut text = String::new();
        Read::by_ref(&mut f)
            .take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        let file: SchedulerFile =
            serde_json::from_str(&text).map_err(|e| SchedulerFileError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let scheme_ok = match &file.certificate {
            Some(_) => file.address.starts_with("https://"),
            None => file.address.starts_with("http://"),
        };
        if !scheme_ok {
            return Err(SchedulerFileError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "address `{}` is not an https:// URL with a certificate fingerprint, nor an http:// URL without one",
                    file.address
                ),
            });
        }
        Ok(file)
    }

    /// Writes the file atomically, readable by its owner only: a new
    /// temporary file with a random name (created exclusively, never
    /// through a symbolic link) renamed into place, so no other user can
    /// have made or opened it first.
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
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("scheduler"),
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        let written = (|| {
            let mut f = crate::private_fs::create_secret(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(err)
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
            address: "https://127.0.0.1:1".into(),
            cluster_id: ClusterId::generate(),
            token: Token::generate(),
            certificate: Some(
                crate::tls::ClusterCert::generate("t")
                    .unwrap()
                    .fingerprint(),
            ),
            pid: 1,
            started_at: 2,
            dask: Some(DaskEndpoint {
                address: "tcp://127.0.0.1:2".into(),
                http: "http://127.0.0.1:3".into(),
                scheduler_file: "/tmp/dask.json".into(),
                tls: None,
                token: Some(Token::generate()),
            }),
        };
        file.write(&path).unwrap();
        assert_eq!(SchedulerFile::read(&path).unwrap(), file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn files_others_may_read_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let file = SchedulerFile {
            address: "http://127.0.0.1:1".into(),
            cluster_id: ClusterId::generate(),
            token: Token::generate(),
            certificate: None,
            pid: 1,
            started_at: 2,
            dask: None,
        };
        file.write(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SchedulerFile::read(&path).unwrap_err();
        assert_eq!(e.exit_code(), USAGE);
        assert!(
            e.to_string().contains("mode 0644") && e.to_string().contains("chmod 600"),
            "{e}"
        );
        // Writing again replaces it with a private file, not through it.
        file.write(&path).unwrap();
        assert_eq!(SchedulerFile::read(&path).unwrap(), file);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let bad = SchedulerFile::read(&path).unwrap_err().to_string();
        assert!(bad.contains("is not valid"), "{bad}");
    }
}
