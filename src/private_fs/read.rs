//! The one reader of logs drover shows: job logs (`drover logs`,
//! `cluster.logs()`, the status page, start-up failures), Dask's scheduler
//! log. Log directories may be shared with other users, so reads are
//! bounded, the file is opened without following a link or blocking on a
//! FIFO, and it must be a regular file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most bytes one read returns.
pub const MAX_CHUNK: u64 = 64 << 10;

/// A piece of a log: bytes `from..to`, as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunk {
    /// Where it starts in the file.
    pub from: u64,
    /// Where it ends.
    pub to: u64,
    /// Its bytes, invalid UTF-8 replaced.
    pub text: String,
}

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

/// Reads the bytes `span(len, from)` picks, as `start..end`, of the log
/// at `path`; a log that shrank below `from` (rewritten) is read from its
/// start, and one not there (yet), or not a regular file, is empty.
fn read_span(path: &Path, from: u64, span: impl FnOnce(u64, u64) -> (u64, u64)) -> Chunk {
    let Ok(mut file) = open(path) else {
        return Chunk {
            from,
            to: from,
            text: String::new(),
        };
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = if from > len { 0 } else { from };
    let (start, end) = span(len, from);
    let mut bytes = Vec::new();
    let read = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| file.take(end - start).read_to_end(&mut bytes));
    if read.is_err() {
        bytes.clear();
    }
    Chunk {
        from: start,
        to: start + bytes.len() as u64,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The log from byte `from` on, at most `max` bytes of it: when more than
/// that came, the newest `max` (and `from` says where they start).
pub fn read_from(path: &Path, from: u64, max: u64) -> Chunk {
    read_span(path, from, |len, from| {
        (from.max(len.saturating_sub(max)), len)
    })
}

/// At most `max` bytes of the log from byte `from` on, the oldest first:
/// for printing a whole log a chunk at a time.
pub fn read_forward(path: &Path, from: u64, max: u64) -> Chunk {
    read_span(path, from, |len, from| (from, from + max.min(len - from)))
}

/// The end of the log: its last `MAX_CHUNK` bytes.
pub fn tail(path: &Path) -> Chunk {
    read_from(path, 0, MAX_CHUNK)
}

/// The last `n` lines of the log's last `MAX_CHUNK` bytes, if it has any.
pub fn tail_lines(path: &Path, n: usize) -> Option<String> {
    let chunk = tail(path);
    let lines: Vec<&str> = chunk.text.lines().collect();
    // A chunk cut mid-line starts with a piece of one: leave it out.
    let skip = usize::from(chunk.from > 0 && lines.len() > 1);
    let lines = &lines[skip..];
    if lines.is_empty() {
        return None;
    }
    Some(lines[lines.len().saturating_sub(n)..].join("\n"))
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
        let c = read_from(&path, 4, MAX_CHUNK);
        assert_eq!(c.text, "two\n");
        assert_eq!(read_from(&path, 8, MAX_CHUNK).text, "");
        // A rewritten, shorter log is read again from its start.
        std::fs::write(&path, "x\n").unwrap();
        assert_eq!(read_from(&path, 8, MAX_CHUNK).text, "x\n");
        // A big log: the newest chunk only.
        let big = "a".repeat(MAX_CHUNK as usize) + "latest\n";
        std::fs::write(&path, &big).unwrap();
        let c = read_from(&path, 0, MAX_CHUNK);
        assert!(c.text.ends_with("latest\n") && c.text.len() as u64 == MAX_CHUNK);
        assert_eq!(c.to, big.len() as u64);
        let first = read_forward(&path, 0, 10);
        assert_eq!((first.from, first.to, first.text.len()), (0, 10, 10));
        let last = read_forward(&path, c.to - 7, MAX_CHUNK);
        assert_eq!(last.text, "latest\n");
        // One line longer than the chunk: its end is what is shown.
        assert!(tail_lines(&path, 3).unwrap().ends_with("alatest"));
        std::fs::write(&path, "a".repeat(MAX_CHUNK as usize) + "\nb\nc\n").unwrap();
        assert_eq!(
            tail_lines(&path, 5).as_deref(),
            Some("b\nc"),
            "the cut line is left out"
        );
    }

    #[test]
    fn tail_lines_keeps_the_last_lines_and_nothing_of_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.out");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail_lines(&path, 2).as_deref(), Some("b\nc"));
        assert_eq!(tail_lines(&path, 9).as_deref(), Some("a\nb\nc"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(tail_lines(&path, 2), None);
        assert_eq!(tail_lines(&dir.path().join("none"), 2), None);
    }

    #[test]
    fn links_and_fifos_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "private").unwrap();
        let link = dir.path().join("w.out");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert_eq!(tail(&link).text, "");
        assert_eq!(tail_lines(&link, 5), None);
        let fifo = dir.path().join("f.out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(tail(&fifo).text, "");
    }
}
