//! Temporary directories only the owner may enter.
//!
//! `tempfile` creates a directory with the process's umask (0755 under
//! the usual 022), so the names inside (an ssh control socket, a
//! scheduler file, task outputs) would be listed by anyone; the mode is
//! asked for explicitly here.

use std::os::unix::fs::PermissionsExt;

/// A fresh directory in the system's temporary directory, `prefix` then a
/// random name, mode 0700 whatever the umask; removed when dropped.
pub fn temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_is_the_owners_alone_under_any_umask() {
        // The umask is the process's: set and restored within this test.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o002));
        let dir = temp_dir("drover-test-");
        nix::sys::stat::umask(old);
        let dir = dir.unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
    }
}
