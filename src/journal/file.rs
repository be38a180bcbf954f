//! The journal on disk: opened (and checked) once, then appended to by a
//! writer thread that makes records durable in batches (one `fdatasync`
//! for every record that arrived while the previous one ran), so that a
//! busy scheduler pays one sync per batch, not per change.
//!
//! A change is acknowledged (its request answered) only once `durable`
//! says its record is on disk.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use tokio::sync::{watch, Notify};

use super::frame::{self, FrameError};
use super::op::Op;
use super::writer::{write_loop, Durable, Msg};

/// Why a journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("journal {}: {cause}; nothing was changed in it", .path.display())]
    Frame { path: PathBuf, cause: FrameError },
    #[error("journal {}: record {index} is not a drover journal record ({cause}); nothing was changed in it", .path.display())]
    Record {
        path: PathBuf,
        index: usize,
        cause: String,
    },
    #[error("journal {} belongs to uid {owner} or others may write it (mode {mode:o}): another user may have made it to run their tasks as you; use a journal only you own and write", .path.display())]
    NotOurs {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error("journal {} was written by drover {found}; this is drover {ours}, which reads only its own journals; nothing was changed in it", .path.display())]
    Version {
        path: PathBuf,
        found: String,
        ours: String,
    },
    #[error("the journal cannot be written ({0}): changes are refused until it can")]
    Failed(String),
    #[error("journal {} is of a pool that was closed: nothing is left to continue; remove it, or name a new journal", .path.display())]
    Closed { path: PathBuf },
    #[error("journal {} is in use by a running drover (a scheduler or pool on it is alive); stop that one first, or name another journal; nothing was changed in it", .path.display())]
    InUse { path: PathBuf },
}

/// An open journal.
///
/// It holds an exclusive lock on its file while open (until the writer has
/// written everything queued and closed it): two schedulers appending to
/// one journal would interleave their records. A process killed outright
/// loses the lock with its file descriptors, so a restart is never locked
/// out.
pub struct Journal {
    path: PathBuf,
    next: u64,
    /// `None` once dropped: the writer then finishes and closes the file.
    tx: Option<mpsc::Sender<Msg>>,
    /// The last identity record, framed: a compacted journal starts so.
    identity: Option<Vec<u8>>,
    /// Bytes written since the last snapshot (or in the file as opened).
    grown: u64,
    /// Bytes of the last compacted journal written (by the writer).
    snapshot: Arc<AtomicU64>,
    /// Growth that makes a compaction due (`u64::MAX`: never).
    compact_after: u64,
    /// Notified when a compaction is due.
    due: Arc<Notify>,
    durable: watch::Receiver<Durable>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The version that writes and reads journals.
pub const DROVER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |cause| JournalError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

impl Journal {
    /// Opens `path`: an existing journal is read whole (a torn last record
    /// is dropped) and its records returned; a missing one is created
    /// empty. An existing one must be ours and private, of our version.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Op>), JournalError> {
        let (file, ops) = match open_existing(path)? {
            Some(found) => found,
            None => (create(path)?, Vec::new()),
        };
        let grown = file.metadata().map_err(io(path))?.len();
        let (tx, rx) = mpsc::channel::<Msg>();
        let (durable_tx, durable) = watch::channel(Durable::Upto(0));
        let at = path.to_path_buf();
        let snapshot = Arc::new(AtomicU64::new(0));
        let written = snapshot.clone();
        let writer = std::thread::Builder::new()
            .name("drover-journal".into())
            .spawn(move || write_loop(file, at, rx, durable_tx, written))
            .map_err(io(path))?;
        let identity = ops.iter().rev().find_map(|op| match op {
            Op::Identity(_) => Some(op.record()),
            _ => None,
        });
        let journal = Journal {
            path: path.to_path_buf(),
            next: 0,
            tx: Some(tx),
            identity,
            grown,
            snapshot,
            compact_after: u64::MAX,
            due: Arc::new(Notify::new()),
            durable,
            writer: Some(writer),
        };
        Ok((journal, ops))
    }

    /// The records of the journal at `path`, read without opening it for
    /// writing (it may be in use): for looking, not for continuing.
    pub fn read(path: &Path) -> Result<Vec<Op>, JournalError> {
        let mut file = File::open(path).map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        Ok(parse(path, &bytes)?.1)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record; returns its sequence number, for `durable`.
    pub fn append(&mut self, op: &Op) -> u64 {
        self.next += 1;
        let framed = op.record();
        if matches!(op, Op::Identity(_)) {
            self.identity = Some(framed.clone());
        }
        self.grown = self.grown.saturating_add(framed.len() as u64);
        if self.due() {
            self.due.notify_one();
        }
        // A closed channel means the writer failed; `durable` says so.
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Record(self.next, framed));
        }
        self.next
    }

    /// Compacts once the journal has grown by `bytes`; returns what is
    /// notified whenever a compaction is due.
    pub fn compact_after(&mut self, bytes: u64) -> Arc<Notify> {
        self.compact_after = bytes;
        if self.due() {
            self.due.notify_one();
        }
        self.due.clone()
    }

    /// Whether the journal has grown enough to compact: by the set bytes
    /// and by at least its last snapshot's size, so that compacting costs
    /// at most about one byte written per byte appended.
    pub fn due(&self) -> bool {
        let snapshot = self.snapshot.load(Ordering::Relaxed);
        self.identity.is_some() && self.grown > 0 && self.grown >= self.compact_after.max(snapshot)
    }

    /// Bytes appended since the last snapshot (or in the file as opened).
    pub fn grown(&self) -> u64 {
        self.grown
    }

    /// Replaces the journal with its identity and `snapshot` (records that
    /// rebuild the whole book as it is after every record queued so far).
    /// The writer serializes them (off the caller's thread), writes them
    /// to a new file beside the journal, makes that durable and renames it
    /// over the journal, then appends there. Should that fail (a full
    /// disk) the journal goes on as it was. `false` without an identity.
    pub fn compact(&mut self, snapshot: Vec<Op>) -> bool {
        let Some(identity) = self.identity.clone() else {
            return false;
        };
        self.grown = 0;
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Compact { identity, snapshot });
        }
        true
    }

    /// The sequence number of the last record queued.
    pub fn last(&self) -> u64 {
        self.next
    }

    /// A handle that waits for records to be durable.
    pub fn waiter(&self) -> Waiter {
        Waiter(self.durable.clone())
    }
}

/// Waits until records are durable.
#[derive(Clone)]
pub struct Waiter(watch::Receiver<Durable>);

impl Waiter {
    /// Returns once record `seq` (and every one before it) is on disk.
    pub async fn durable(&self, seq: u64) -> Result<(), JournalError> {
        let mut rx = self.0.clone();
        let state = rx
            .wait_for(|d| {
                matches!(d, Durable::Failed(_)) || matches!(d, Durable::Upto(n) if *n >= seq)
            })
            .await
            .map(|d| d.clone())
            .unwrap_or_else(|_| Durable::Failed("the journal writer stopped".into()));
        match state {
            Durable::Upto(_) => Ok(()),
            Durable::Failed(why) => Err(JournalError::Failed(why)),
        }
    }

    /// Returns once writing has failed, with why (never, while it works).
    pub async fn failure(&self) -> String {
        let mut rx = self.0.clone();
        let state = rx
            .wait_for(|d| matches!(d, Durable::Failed(_)))
            .await
            .map(|d| d.clone());
        match state {
            Ok(Durable::Failed(why)) => why,
            _ => "the journal writer stopped".into(),
        }
    }
}

/// Creates a new journal: private, with its header, synced with its
/// directory entry.
fn create(path: &Path) -> Result<File, JournalError> {
    let mut file = crate::private_fs::create_secret(path).map_err(io(path))?;
    lock(&file, path)?;
    file.write_all(frame::HEADER)
        .and_then(|()| file.sync_all())
        .map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(path))?;
    }
    Ok(file)
}

/// Opens and reads an existing journal, if there is one.
fn open_existing(path: &Path) -> Result<Option<(File, Vec<Op>)>, JournalError> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let meta = file.metadata().map_err(io(path))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o077 != 0 || !meta.is_file() {
        return Err(JournalError::NotOurs {
            path: path.to_path_buf(),
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    lock(&file, path)?;
    // A running scheduler that compacts renames a new file over the
    // journal: one opened just before holds the old file, whose lock the
    // compacting one just let go. That one is still in use.
    let now = std::fs::symlink_metadata(path).map_err(io(path))?;
    if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        return Err(JournalError::InUse {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    let (read, ops) = parse(path, &bytes)?;
    if read.torn > 0 {
        tracing::warn!(
            journal = %path.display(),
            bytes = read.torn,
            "the journal's last record was cut short (a crash while writing): dropping it"
        );
        file.set_len(read.valid_len)
            .and_then(|()| file.sync_all())
            .map_err(io(path))?;
    }
    Ok(Some((file, ops)))
}

/// Takes the journal's exclusive lock, or says who holds it.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::InUse {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(path)(e)),
    }
}

/// A journal's bytes as records and ops, checked for our version.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<(frame::Read<'a>, Vec<Op>), JournalError> {
    let read = frame::read(bytes).map_err(|cause| JournalError::Frame {
        path: path.to_path_buf(),
        cause,
    })?;
    let mut ops = Vec::with_capacity(read.records.len());
    for (index, record) in read.records.iter().enumerate() {
        let op: Op = serde_json::from_slice(record).map_err(|e| JournalError::Record {
            path: path.to_path_buf(),
            index,
            cause: e.to_string(),
        })?;
        ops.push(op);
    }
    if let Some(Op::Identity(id)) = ops.first() {
        if id.drover != DROVER_VERSION {
            return Err(JournalError::Version {
                path: path.to_path_buf(),
                found: id.drover.clone(),
                ours: DROVER_VERSION.into(),
            });
        }
    }
    Ok((read, ops))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::TaskId;

    #[tokio::test]
    async fn records_are_durable_once_waited_for_and_read_back_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, ops) = Journal::open(&path).unwrap();
        assert!(ops.is_empty());
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for t in 1..=100 {
            j.append(&Op::Cancel { task: TaskId(t) });
        }
        j.waiter().durable(j.last()).await.unwrap();
        drop(j);
        let (_, ops) = Journal::open(&path).unwrap();
        assert_eq!(ops.len(), 100);
        assert_eq!(ops[99], Op::Cancel { task: TaskId(100) });
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_appending_goes_on_after_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(&Op::Cancel { task: TaskId(1) });
        j.waiter().durable(1).await.unwrap();
        drop(j);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&frame::frame(b"{\"op\":\"cancel\",\"task\":2}")[..10])
            .unwrap();
        drop(f);
        let (mut j, ops) = Journal::open(&path).unwrap();
        assert_eq!(ops, vec![Op::Cancel { task: TaskId(1) }]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        j.append(&Op::Cancel { task: TaskId(3) });
        j.waiter().durable(1).await.unwrap();
        drop(j);
        let (_, ops) = Journal::open(&path).unwrap();
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn a_journal_in_use_is_refused_and_free_again_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(&Op::Cancel { task: TaskId(1) });
        let e = Journal::open(&path).err().unwrap();
        assert!(matches!(e, JournalError::InUse { .. }), "{e}");
        assert!(e.to_string().contains("in use by a running drover"), "{e}");
        // Read-only looking is still possible.
        assert!(Journal::read(&path).is_ok());
        drop(j);
        let (_, ops) = Journal::open(&path).unwrap();
        assert_eq!(ops, vec![Op::Cancel { task: TaskId(1) }]);
    }

    #[test]
    fn a_journal_others_may_write_or_of_another_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, frame::HEADER).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let e = Journal::open(&path).err().unwrap();
        assert!(matches!(e, JournalError::NotOurs { .. }), "{e}");
        std::fs::remove_file(&path).unwrap();
        let mut f = crate::private_fs::create_secret(&path).unwrap();
        let id = Op::Identity(super::super::op::Identity {
            drover: "0.0.1-old".into(),
            cluster_id: "abcd1234".into(),
            token: "t".into(),
            cert_pem: String::new(),
            key_pem: String::new(),
            address: "127.0.0.1:1".into(),
            began_ms: 0,
        });
        f.write_all(frame::HEADER).unwrap();
        f.write_all(&frame::frame(&serde_json::to_vec(&id).unwrap()))
            .unwrap();
        drop(f);
        let before = std::fs::read(&path).unwrap();
        let e = Journal::open(&path).err().unwrap();
        assert!(e.to_string().contains("0.0.1-old"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "nothing changed");
    }

    /// A journal's first record, for tests.
    pub(crate) fn identity() -> Op {
        Op::Identity(super::super::op::Identity {
            drover: DROVER_VERSION.into(),
            cluster_id: "abcd1234".into(),
            token: "t".into(),
            cert_pem: String::new(),
            key_pem: String::new(),
            address: "127.0.0.1:1".into(),
            began_ms: 0,
        })
    }

    #[tokio::test]
    async fn a_compacted_journal_is_the_snapshot_then_what_came_after_and_stays_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path).unwrap();
        let id = identity();
        j.append(&id);
        for t in 1..=1000 {
            j.append(&Op::Cancel { task: TaskId(t) });
        }
        let due = j.compact_after(1000);
        due.notified().await; // it grew by more than 1000 bytes
        assert!(j.due());
        assert!(j.compact(vec![Op::MaxCores { cores: 8 }]));
        assert!(!j.due(), "nothing grew since");
        j.append(&Op::Cancel { task: TaskId(1001) });
        j.waiter().durable(j.last()).await.unwrap();
        let ops = Journal::read(&path).unwrap();
        assert_eq!(
            ops,
            vec![
                id,
                Op::MaxCores { cores: 8 },
                Op::Cancel { task: TaskId(1001) }
            ]
        );
        let e = Journal::open(&path).err().unwrap();
        assert!(
            matches!(e, JournalError::InUse { .. }),
            "the new file is locked: {e}"
        );
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "no temporary file is left beside it");
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(j);
        assert_eq!(Journal::open(&path).unwrap().1.len(), 3);
    }

    #[tokio::test]
    async fn a_compaction_that_cannot_be_written_leaves_the_journal_going_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d").join("j");
        std::fs::create_dir(path.parent().unwrap()).unwrap();
        let (mut j, _) = Journal::open(&path).unwrap();
        let id = identity();
        j.append(&id);
        j.append(&Op::Cancel { task: TaskId(1) });
        // Its directory moves away: no new file can be made where it was.
        let moved = dir.path().join("elsewhere");
        std::fs::rename(path.parent().unwrap(), &moved).unwrap();
        assert!(j.compact(vec![Op::MaxCores { cores: 8 }]));
        j.append(&Op::Cancel { task: TaskId(2) });
        j.waiter().durable(j.last()).await.unwrap();
        let ops = Journal::read(&moved.join("j")).unwrap();
        assert_eq!(ops.len(), 3, "every record, and no snapshot: {ops:?}");
        assert_eq!(ops[2], Op::Cancel { task: TaskId(2) });
    }
}
