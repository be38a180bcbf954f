//! The scheduler's journal: every change to its book, durable before it is
//! acknowledged, so that a scheduler killed outright comes back with its
//! tasks, their results and its workers (`drover scheduler --journal`).
//!
//! An append-only log of checksummed records (`frame`) of the book's
//! inputs (`op`), written in batches by one thread (`file`).

pub mod file;
pub mod frame;
pub mod op;
mod writer;

pub use file::{Journal, JournalError, Waiter, DROVER_VERSION};
pub use op::{Identity, Op, PoolMode, Snapshot, WorkerImage};
