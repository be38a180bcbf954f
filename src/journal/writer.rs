//! The journal's writer thread: appends records in batches, one
//! `fdatasync` for every record that arrived while the previous batch was
//! written, and carries out compactions between batches.
//!
//! A compaction writes the new journal (header, identity, snapshot) to a
//! fresh private file in the same directory, makes it durable, locks it
//! and renames it over the journal, then syncs the directory: at every
//! moment the path holds either the old journal whole or the new one
//! whole. Records queued before the compaction went to the old file (and
//! the snapshot already holds their effect); those after go to the new.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use tokio::sync::watch;

use super::frame;
use super::op::Op;

/// What the writer has made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Durable {
    /// Every record up to this sequence number.
    Upto(u64),
    /// Writing failed; nothing after the failure is durable.
    Failed(String),
}

/// What the writer is asked to do, in order.
pub(super) enum Msg {
    /// Append one framed record with this sequence number.
    Record(u64, Vec<u8>),
    /// Replace the journal with its identity (a framed record) and these.
    Compact {
        identity: Vec<u8>,
        snapshot: Vec<Op>,
    },
}

/// Runs until the journal is dropped (its sender closed) or a write fails.
pub(super) fn write_loop(
    mut file: File,
    path: PathBuf,
    rx: mpsc::Receiver<Msg>,
    durable: watch::Sender<Durable>,
    compacted: Arc<AtomicU64>,
) {
    let mut next = None;
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => return,
            },
        };
        match msg {
            Msg::Record(mut seq, mut batch) => {
                while let Ok(more) = rx.try_recv() {
                    match more {
                        Msg::Record(s, bytes) => {
                            batch.extend_from_slice(&bytes);
                            seq = s;
                        }
                        compact => {
                            next = Some(compact);
                            break;
                        }
                    }
                }
                if let Err(e) = file.write_all(&batch).and_then(|()| file.sync_data()) {
                    tracing::error!(error = %e, "cannot write the journal; refusing changes from now on");
                    durable.send_replace(Durable::Failed(e.to_string()));
                    return;
                }
                durable.send_replace(Durable::Upto(seq));
            }
            Msg::Compact { identity, snapshot } => {
                let mut bytes = frame::HEADER.to_vec();
                bytes.extend_from_slice(&identity);
                for op in &snapshot {
                    bytes.extend_from_slice(&op.record());
                }
                drop(snapshot);
                // Even if it fails: the next try waits for as much growth.
                compacted.store(bytes.len() as u64, Ordering::Relaxed);
                match replace(&path, &bytes) {
                    Ok(new) => {
                        tracing::info!(journal = %path.display(), bytes = bytes.len(), "journal compacted");
                        file = new;
                    }
                    Err(e) => tracing::warn!(
                        journal = %path.display(),
                        error = %e,
                        "cannot compact the journal; it goes on growing as it was"
                    ),
                }
            }
        }
    }
}

/// Writes `bytes` as the journal at `path`, durably, and returns it open
/// (and locked) for appending.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Private (0600), with a name no one else can have made first.
    let mut tmp = tempfile::Builder::new()
        .prefix(".drover-journal-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.as_file().try_lock().map_err(std::io::Error::other)?;
    let file = tmp.persist(path).map_err(|e| e.error)?;
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        // The rename is done; only its durability across a power cut is
        // in doubt, and the next sync of the file covers most systems.
        tracing::warn!(error = %e, "cannot sync the journal's directory after compacting");
    }
    Ok(file)
}
