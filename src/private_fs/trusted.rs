//! Files whose contents drover obeys: config files (a prologue in one
//! becomes a line of every job script), job script templates, task
//! graphs. Another user's file, or one others may change, could make our
//! jobs run their commands, so such a file must be ours (or root's) and
//! writable by no one else; the descriptor checked is the one read.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{me, FsError};

/// The most bytes of a config file or template.
pub const MAX_TRUSTED_BYTES: u64 = 4 << 20;

/// Reads `path` (a `what`, for errors) if it is ours or root's, no one
/// else may write it, and it holds at most `max` bytes.
pub fn read_trusted(path: &Path, what: &'static str, max: u64) -> Result<String, FsError> {
    let file = std::fs::File::open(path).map_err(FsError::io(path))?;
    let meta = file.metadata().map_err(FsError::io(path))?;
    check(path, what, meta.uid(), meta.mode(), meta.is_file())?;
    if meta.len() > max {
        return Err(FsError::TooLarge {
            what,
            path: path.to_path_buf(),
            size: meta.len(),
            max,
        });
    }
    let mut text = String::new();
    file.take(max)
        .read_to_string(&mut text)
        .map_err(FsError::io(path))?;
    Ok(text)
}

fn check(
    path: &Path,
    what: &'static str,
    owner: u32,
    mode: u32,
    file: bool,
) -> Result<(), FsError> {
    if !file {
        return Err(FsError::NotA {
            path: path.to_path_buf(),
            expected: "regular file",
        });
    }
    let me = me();
    if owner != me && owner != 0 {
        return Err(FsError::NotOurs {
            what,
            path: path.to_path_buf(),
            owner,
            me,
        });
    }
    if mode & 0o022 != 0 {
        return Err(FsError::OpenToOthers {
            what,
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_files_no_one_else_may_change_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("drover.toml");
        std::fs::write(&p, "[job]\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_trusted(&p, "config file", 100).unwrap(), "[job]\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = read_trusted(&p, "config file", 100).unwrap_err();
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_trusted(&p, "config file", 3),
            Err(FsError::TooLarge { .. })
        ));
        assert!(matches!(
            read_trusted(tmp.path(), "config file", 100),
            Err(FsError::NotA { .. })
        ));
        let other = me().wrapping_add(1).max(1);
        let e = check(&p, "config file", other, 0o600, true).unwrap_err();
        assert!(e.to_string().contains("not to you"), "{e}");
    }
}
