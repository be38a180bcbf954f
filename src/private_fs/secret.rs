//! Files for secrets (the scheduler file's token, a cluster's TLS key)
//! that may sit in a shared directory.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` afresh, mode 0600: it must not exist (so no other user
/// can have made or opened it first) and is never opened through a link.
pub fn create_secret(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
}
