//! A worker's job log, read for its page: the end of it, and what came
//! after a given offset. Bounded reads only; the file is opened without
//! following a symbolic link or blocking on a FIFO, and must be a regular
//! file (log directories may be shared with other users).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::protocol::LogChunk;

/// The most bytes one read returns.
pub(crate) const MAX_CHUNK: u64 = 64 << 10;

fn open(path: &Path) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The log from byte `from` on, at most `MAX_CHUNK` of it: when more than
/// that came, the newest `MAX_CHUNK` (and `from` says where it starts). A
/// log that shrank (rewritten) is read from its start. A log not there yet
/// is empty.
pub(crate) fn read_from(path: &Path, from: u64) -> LogChunk {
    let Ok(mut file) = open(path) else {
        return LogChunk {
            from,
            to: from,
            text: String::new(),
        };
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = if from > len { 0 } else { from };
    let start = from.max(len.saturating_sub(MAX_CHUNK));
    let mut bytes = Vec::new();
    let read = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| file.take(len - start).read_to_end(&mut bytes));
    if read.is_err() {
        bytes.clear();
    }
    let to = start + bytes.len() as u64;
    LogChunk {
        from: start,
        to,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The end of the log: its last `MAX_CHUNK` bytes.
pub(crate) fn tail(path: &Path) -> LogChunk {
    read_from(path, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_followed_from_an_offset_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.out");
        assert_eq!(tail(&path).text, "", "not there yet");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let c = tail(&path);
        assert_eq!((c.from, c.to, c.text.as_str()), (0, 8, "one\ntwo\n"));
        let c = read_from(&path, 4);
        assert_eq!(c.text, "two\n");
        assert_eq!(read_from(&path, 8).text, "");
        // A rewritten, shorter log is read again from its start.
        std::fs::write(&path, "x\n").unwrap();
        assert_eq!(read_from(&path, 8).text, "x\n");
        // A big log: the newest chunk only.
        let big = "a".repeat(MAX_CHUNK as usize) + "latest\n";
        std::fs::write(&path, &big).unwrap();
        let c = read_from(&path, 0);
        assert!(c.text.ends_with("latest\n") && c.text.len() as u64 == MAX_CHUNK);
        assert_eq!(c.to, big.len() as u64);
    }

    #[test]
    fn links_and_fifos_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "private").unwrap();
        let link = dir.path().join("w.out");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert_eq!(tail(&link).text, "");
        let fifo = dir.path().join("f.out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(tail(&fifo).text, "");
    }
}
