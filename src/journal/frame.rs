//! The journal's bytes: a header line naming the format, then records,
//! each `[length: u32 LE][crc32 of the payload: u32 LE][payload]`.
//!
//! A crash can cut the last record short (a torn write): reading stops
//! at the last complete record and says how many bytes it dropped. Any
//! other fault (a bad checksum with records after it, a length no writer
//! writes, another header) is damage: an error, and nothing is changed.

use std::fmt;

/// The first bytes of every journal: the name, and the format's version.
pub const HEADER: &[u8] = b"drover-journal 1\n";

/// The largest record a writer writes: a submission is at most the
/// control plane's 8 MiB body, and a task's kept output is bounded below
/// that.
pub const MAX_RECORD: usize = 64 << 20;

/// Why a journal cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not a drover journal, or one of another format version.
    Header { found: String },
    /// Damaged before its last record.
    Damaged { offset: u64, why: &'static str },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Header { found } => write!(
                f,
                "not a journal this drover reads: it starts with {found:?}, where format 1 starts with {:?}",
                String::from_utf8_lossy(HEADER).trim_end()
            ),
            FrameError::Damaged { offset, why } => {
                write!(f, "damaged at byte {offset}: {why}")
            }
        }
    }
}

/// The records of a journal, and where the complete ones end.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read<'a> {
    pub records: Vec<&'a [u8]>,
    /// Bytes from the start to the end of the last complete record: where
    /// the next record goes.
    pub valid_len: u64,
    /// Bytes after that: a record cut short by a crash.
    pub torn: u64,
}

/// One record, framed.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads a whole journal (its header and records).
pub fn read(bytes: &[u8]) -> Result<Read<'_>, FrameError> {
    if !bytes.starts_with(HEADER) {
        let end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(bytes.len());
        let found = String::from_utf8_lossy(&bytes[..end.min(40)]).into_owned();
        return Err(FrameError::Header { found });
    }
    let mut read = Read::default();
    let mut at = HEADER.len();
    while at < bytes.len() {
        let left = bytes.len() - at;
        let damaged = |why| FrameError::Damaged {
            offset: at as u64,
            why,
        };
        if left < 8 {
            read.torn = left as u64;
            break;
        }
        let len = u32_at(bytes, at) as usize;
        if len > MAX_RECORD {
            return Err(damaged("a record longer than any writer writes"));
        }
        if left - 8 < len {
            read.torn = left as u64;
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != u32_at(bytes, at + 4) {
            if at + 8 + len == bytes.len() {
                // The last record, written in part: a torn write.
                read.torn = left as u64;
                break;
            }
            return Err(damaged(
                "a checksum that does not match, with records after it",
            ));
        }
        read.records.push(payload);
        at += 8 + len;
    }
    read.valid_len = (bytes.len() as u64) - read.torn;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(records: &[&[u8]]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for r in records {
            out.extend(frame(r));
        }
        out
    }

    #[test]
    fn records_read_back_in_order() {
        let bytes = journal(&[b"one", b"", b"three"]);
        let read = read(&bytes).unwrap();
        assert_eq!(read.records, vec![&b"one"[..], b"", b"three"]);
        assert_eq!((read.valid_len, read.torn), (bytes.len() as u64, 0));
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_every_cut() {
        let whole = journal(&[b"first", b"second record"]);
        let first_end = HEADER.len() + 8 + 5;
        for cut in first_end + 1..whole.len() {
            let read = read(&whole[..cut]).unwrap();
            assert_eq!(read.records, vec![&b"first"[..]], "cut at {cut}");
            assert_eq!(read.valid_len, first_end as u64);
            assert_eq!(read.torn, (cut - first_end) as u64);
        }
    }

    #[test]
    fn a_last_record_with_a_bad_checksum_is_torn_but_one_in_the_middle_is_damage() {
        let mut bytes = journal(&[b"first", b"second"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let read = read(&bytes).unwrap();
        assert_eq!(read.records.len(), 1);
        let mut bytes = journal(&[b"first", b"second"]);
        bytes[HEADER.len() + 8] ^= 0xff;
        let e = super::read(&bytes).unwrap_err();
        assert!(matches!(e, FrameError::Damaged { .. }), "{e}");
    }

    #[test]
    fn another_format_or_file_is_refused_with_what_it_starts_with() {
        let e = read(b"drover-journal 2\n").unwrap_err();
        assert!(e.to_string().contains("drover-journal 2"), "{e}");
        assert!(read(b"").is_err());
        let mut huge = HEADER.to_vec();
        huge.extend_from_slice(&(u32::MAX).to_le_bytes());
        huge.extend_from_slice(&[0; 12]);
        assert!(matches!(read(&huge), Err(FrameError::Damaged { .. })));
    }
}
