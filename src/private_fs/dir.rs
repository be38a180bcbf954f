//! `PrivateDir`: a directory drover writes files into, held open by its
//! descriptor once it has been checked, so that what is checked is what is
//! written to (a path swapped for a link afterwards changes nothing).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::{me, Access, FsError};

/// The sticky bit: in such a directory only a file's owner may remove or
/// rename it, so others' write access cannot touch ours.
const STICKY: u32 = 0o1000;

/// A checked directory, open.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
    access: Access,
}

impl PrivateDir {
    /// `path` as a directory to write into: created (with missing parents)
    /// with `access`'s mode when it is not there; when it is, it must be
    /// ours, or root's, and writable by no one else unless sticky (`/tmp`).
    pub fn ensure(path: &Path, access: Access) -> Result<PrivateDir, FsError> {
        let created = std::fs::symlink_metadata(path).is_err();
        if created {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(access.dir_mode())
                .create(path)
                .map_err(FsError::io(path))?;
        }
        let dir = Self::open(path, access)?;
        if created {
            // The umask may have taken bits the access asks for (group
            // reads under umask 077).
            fchmod(&dir.fd, Mode::from_bits_truncate(access.dir_mode()))
                .map_err(|e| FsError::io(path)(e.into()))?;
        }
        Ok(dir)
    }

    /// An existing directory, checked as `ensure` checks it.
    pub fn open(path: &Path, access: Access) -> Result<PrivateDir, FsError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ENOTDIR => FsError::NotA {
                path: path.to_path_buf(),
                expected: "directory",
            },
            e => FsError::io(path)(e.into()),
        })?;
        let st = fstat(&fd).map_err(|e| FsError::io(path)(e.into()))?;
        check_dir(path, st.st_uid, st.st_mode)?;
        Ok(PrivateDir {
            fd,
            path: path.to_path_buf(),
            access,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the file `name` in it, with the directory's access mode:
    /// never through a link, never into a file someone else made. A
    /// regular file of ours already there (an earlier run's) is replaced.
    pub fn create_file(&self, name: &str) -> Result<File, FsError> {
        let full = self.path.join(name);
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(FsError::NotA {
                path: full,
                expected: "file name (one path component)",
            });
        }
        let mode = self.access.file_mode();
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open = || openat(&self.fd, name, flags, Mode::from_bits_truncate(mode));
        let fd = match open() {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EEXIST) if self.ours_to_replace(name) => {
                unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| FsError::io(&full)(e.into()))?;
                open().map_err(|_| FsError::Planted { path: full.clone() })?
            }
            Err(nix::errno::Errno::EEXIST) => return Err(FsError::Planted { path: full }),
            Err(e) => return Err(FsError::io(&full)(e.into())),
        };
        // The umask may have taken bits the access asks for (group reads).
        fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(|e| FsError::io(&full)(e.into()))?;
        Ok(File::from(fd))
    }

    /// Writes `bytes` as the file `name` (see `create_file`).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, FsError> {
        use std::io::Write;
        let path = self.path.join(name);
        let mut f = self.create_file(name)?;
        f.write_all(bytes).map_err(FsError::io(&path))?;
        Ok(path)
    }

    /// Whether `name` is a regular file of ours with no other link to it.
    fn ours_to_replace(&self, name: &str) -> bool {
        let Ok(st) = fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) else {
            return false;
        };
        let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        regular && st.st_uid == me() && st.st_nlink == 1
    }
}

/// A directory is fit to write into when it is ours, or root's, and no one
/// else may write it, unless the sticky bit keeps them off our files.
fn check_dir(path: &Path, owner: u32, mode: u32) -> Result<(), FsError> {
    let me = me();
    if owner != me && owner != 0 {
        return Err(FsError::NotOurs {
            what: "directory",
            path: path.to_path_buf(),
            owner,
            me,
        });
    }
    if mode & 0o022 != 0 && mode & STICKY == 0 {
        return Err(FsError::OpenToOthers {
            what: "directory",
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

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_directory_and_its_files_get_the_access_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = PrivateDir::ensure(&tmp.path().join("a/b"), Access::Private).unwrap();
        assert_eq!(mode(d.path()), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        let p = d.write_file("x.out", b"hi").unwrap();
        assert_eq!(mode(&p), 0o600);
        let g = PrivateDir::ensure(&tmp.path().join("g"), Access::Group).unwrap();
        assert_eq!(mode(g.path()), 0o750);
        assert_eq!(mode(&g.write_file("y", b"").unwrap()), 0o640);
    }

    #[test]
    fn links_and_odd_files_are_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let d = PrivateDir::ensure(&tmp.path().join("d"), Access::Private).unwrap();
        let victim = tmp.path().join("important.txt");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("task-1-1.err")).unwrap();
        let e = d.create_file("task-1-1.err").unwrap_err();
        assert!(matches!(e, FsError::Planted { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        nix::unistd::mkfifo(&d.path().join("f"), Mode::S_IRWXU).unwrap();
        assert!(matches!(d.create_file("f"), Err(FsError::Planted { .. })));
        // A hard link to a file elsewhere is not ours to replace either.
        std::fs::hard_link(&victim, d.path().join("h")).unwrap();
        assert!(matches!(d.create_file("h"), Err(FsError::Planted { .. })));
        assert!(matches!(d.create_file("../x"), Err(FsError::NotA { .. })));
        // An earlier run's own file is replaced.
        d.write_file("old", b"first").unwrap();
        d.write_file("old", b"second").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("old")).unwrap(),
            "second"
        );
    }

    #[test]
    fn a_directory_others_may_write_is_refused_unless_sticky() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = PrivateDir::ensure(&open, Access::Private).unwrap_err();
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(PrivateDir::ensure(&open, Access::Private).is_ok());
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            PrivateDir::ensure(&file, Access::Private),
            Err(FsError::NotA { .. })
        ));
    }

    #[test]
    fn another_users_directory_is_refused() {
        assert!(matches!(
            check_dir(Path::new("/x"), me().wrapping_add(1).max(1), 0o700),
            Err(FsError::NotOurs { .. })
        ));
        assert!(check_dir(Path::new("/tmp"), 0, 0o1777).is_ok());
    }
}
