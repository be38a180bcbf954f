//! What the status page and `drover dashboard` exchange with the
//! scheduler: a one-time login code, the timeline's samples, and the live
//! updates the page receives.

use serde::{Deserialize, Serialize};

/// A one-time code that logs a browser in to the status page
/// (`POST /v1/dashboard/code`, with the cluster's token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardCode {
    /// The code, for `/ui/login?code=...`.
    pub code: String,
    /// How long it stays good, in seconds. It is good once.
    pub expires_in_s: u64,
}

/// The pool at one instant, as the timeline chart draws it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// Jobs pending in Slurm.
    pub pending: u32,
    /// Jobs running.
    pub running: u32,
    /// Workers registered and live.
    pub workers: u32,
    /// Tasks running.
    pub tasks_running: u32,
    /// Tasks ended so far (succeeded, failed or cancelled).
    pub tasks_ended: u64,
    /// Cores of the live workers (what the pool holds now).
    #[serde(default)]
    pub cores: u32,
    /// Of those, the cores running tasks hold (a Dask worker: its tasks
    /// running, at most its cores).
    #[serde(default)]
    pub busy_cores: u32,
}

/// What a page asks its update with (`GET /ui/update?since=N`): the
/// version of the live part it has, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageUpdateQuery {
    #[serde(default)]
    pub since: Option<u64>,
}

/// One live update of the status page (`GET /ui/update`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageUpdate {
    /// The version of the live part this brings the page to.
    pub version: u64,
    /// How the page gets from its version to this one.
    pub live: LiveChange,
    /// The newest sample of the timeline, for the chart.
    pub sample: Option<Sample>,
}

/// How a page's live part (rendered, escaped HTML, a line per table row)
/// becomes the newest: only what changed, once the page has a version
/// the scheduler still keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveChange {
    /// The page has the newest version.
    Same,
    /// The whole live part: for a page with none yet, one whose version
    /// is no longer kept, or when the edits would weigh as much.
    Whole { html: String },
    /// The edits from the page's version to the newest, line by line, in
    /// order from the first line.
    Edits { edits: Vec<LineEdit> },
}

/// One step through the old lines of the live part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineEdit {
    /// The next `n` old lines stay.
    Keep(usize),
    /// The next `n` old lines go.
    Drop(usize),
    /// These new lines come here.
    Add(Vec<String>),
}

impl LiveChange {
    /// The live part after this change to `old` (the HTML of the page's
    /// version), or `None` when the edits do not fit it. The page's
    /// script does the same; this is how tests and Rust clients read it.
    pub fn apply(&self, old: &str) -> Option<String> {
        let edits = match self {
            LiveChange::Same => return Some(old.to_string()),
            LiveChange::Whole { html } => return Some(html.clone()),
            LiveChange::Edits { edits } => edits,
        };
        let old: Vec<&str> = old.split('\n').collect();
        let mut new: Vec<&str> = Vec::with_capacity(old.len());
        let mut at = 0usize;
        for edit in edits {
            match edit {
                LineEdit::Keep(n) => {
                    new.extend(old.get(at..at.checked_add(*n)?)?);
                    at += n;
                }
                LineEdit::Drop(n) => at = at.checked_add(*n).filter(|a| *a <= old.len())?,
                LineEdit::Add(lines) => new.extend(lines.iter().map(String::as_str)),
            }
        }
        (at == old.len()).then(|| new.join("\n"))
    }
}

/// An action taken from the status page (`POST /ui/action`, with the
/// session's action token in `X-Drover-Action-Token`); the journal
/// records each one done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PageAction {
    /// Scale the pool, or one group of it, to `workers`.
    Scale {
        #[serde(default)]
        group: Option<String>,
        workers: usize,
    },
    /// Cancel one job of the pool (`120`, `120_4`, its job id, or one of
    /// its workers by name, as `drover logs` takes it); the pool replaces it
    /// as it would any job that ended.
    CancelJob { job: String },
    /// Cancel one task (and fail what depends on it).
    CancelTask { task: u64 },
}

impl std::fmt::Display for PageAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageAction::Scale {
                group: None,
                workers,
            } => write!(f, "scale the pool to {workers} workers"),
            PageAction::Scale {
                group: Some(g),
                workers,
            } => write!(f, "scale group {g} to {workers} workers"),
            PageAction::CancelJob { job } => write!(f, "cancel job {job}"),
            PageAction::CancelTask { task } => write!(f, "cancel task t{task}"),
        }
    }
}

/// What part of a job's log to read (`GET /ui/workers/{name}/log`): from
/// byte `from` on, of its stdout log, or with `err` of its stderr log.
/// With the cluster's token this is how a driver elsewhere (`--ssh`)
/// reads logs it cannot open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// The byte offset to read from.
    #[serde(default)]
    pub from: u64,
    /// The stderr log (`NAME-JOB.err`) instead of the stdout log.
    #[serde(default)]
    pub err: bool,
}

/// A stretch of a worker's log, for a page that follows it
/// (`GET /ui/workers/{name}/log?from=N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The byte offset it starts at (later than asked when the log grew
    /// by more than a chunk: the bytes between were skipped).
    pub from: u64,
    /// The offset to ask from next.
    pub to: u64,
    /// The bytes, as text (invalid UTF-8 replaced).
    pub text: String,
}

impl From<crate::private_fs::read::Chunk> for LogChunk {
    fn from(c: crate::private_fs::read::Chunk) -> Self {
        LogChunk {
            from: c.from,
            to: c.to,
            text: c.text,
        }
    }
}

/// A span of seconds as the page and `drover status` show it: `42s`,
/// `3m05s`, `1h02m`.
pub fn short_duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_order_and_refuse_what_does_not_fit() {
        let edits = LiveChange::Edits {
            edits: vec![
                LineEdit::Keep(1),
                LineEdit::Drop(1),
                LineEdit::Add(vec!["B".into(), "b".into()]),
                LineEdit::Keep(1),
            ],
        };
        assert_eq!(edits.apply("a\nx\nc").as_deref(), Some("a\nB\nb\nc"));
        // Too few lines, or lines left over: not the version they are from.
        assert_eq!(edits.apply("a\nx"), None);
        assert_eq!(edits.apply("a\nx\nc\nd"), None);
        let huge = LiveChange::Edits {
            edits: vec![LineEdit::Keep(usize::MAX), LineEdit::Drop(usize::MAX)],
        };
        assert_eq!(huge.apply("a"), None);
        assert_eq!(LiveChange::Same.apply("a").as_deref(), Some("a"));
        let json = serde_json::to_string(&edits).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"edits","edits":[{"keep":1},{"drop":1},{"add":["B","b"]},{"keep":1}]}"#
        );
    }
}
