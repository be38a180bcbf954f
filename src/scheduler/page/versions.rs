//! The versions of the page's live part: each refresh renders it once,
//! a changed rendering becomes a new version, and a page that says which
//! version it has gets only the lines that changed since (`?since=N`).
//! With 1,000 jobs the whole part is hundreds of KiB; a refresh changes a
//! few lines (the clock, the counts, a job's state), because a row holds
//! no text that moves by itself (ages and times left are absolute times
//! the page's script writes out).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use similar::{capture_diff_slices_deadline, Algorithm, DiffOp};

use crate::protocol::{LineEdit, LiveChange, PageUpdate, Sample};

/// Versions kept to diff from: a page more refreshes behind than this
/// (a laptop that slept) gets the whole part.
const KEPT: usize = 8;
/// The longest a diff may take; past it the edits are coarser (still
/// right), never slower.
const DIFF_BUDGET: Duration = Duration::from_millis(20);

/// The live part as rendered at each refresh, and the answers made from
/// it for this refresh (one per version a page asked from).
#[derive(Default)]
pub(crate) struct LivePart {
    /// When it was last rendered.
    rendered_at: Option<tokio::time::Instant>,
    /// The newest sample, sent with every answer.
    sample: Option<Sample>,
    /// The newest versions, oldest first; the last is the current one.
    kept: VecDeque<(u64, Arc<str>)>,
    /// Answers for this refresh, by the version asked from (`None`: the
    /// whole part). Emptied at each refresh; at most `KEPT + 1` entries.
    answers: HashMap<Option<u64>, Arc<str>>,
    /// Bumped at each refresh, so an answer made from an older one is
    /// not kept.
    refresh: u64,
}

/// What an answer is made from, taken out of the lock to be worked on.
pub(crate) struct Ask {
    refresh: u64,
    key: Option<u64>,
    version: u64,
    sample: Option<Sample>,
    from: Option<Arc<str>>,
    to: Arc<str>,
}

impl LivePart {
    /// Whether the live part is older than `fresh` and should be
    /// rendered again.
    pub(crate) fn stale(&self, fresh: Duration) -> bool {
        self.rendered_at.is_none_or(|at| at.elapsed() >= fresh)
    }

    /// A new rendering of the live part: a new version when it differs
    /// from the current one.
    pub(crate) fn refreshed(&mut self, html: String, sample: Sample) {
        self.rendered_at = Some(tokio::time::Instant::now());
        self.sample = Some(sample);
        self.answers.clear();
        self.refresh += 1;
        if self.kept.back().is_some_and(|(_, h)| **h == *html) {
            return;
        }
        let version = self.kept.back().map_or(1, |(v, _)| v + 1);
        self.kept.push_back((version, html.into()));
        while self.kept.len() > KEPT {
            self.kept.pop_front();
        }
    }

    /// The answer already made for a page at version `since`, else what
    /// to make it from.
    pub(crate) fn ask(&self, since: Option<u64>) -> Result<Arc<str>, Ask> {
        let (version, to) = self.kept.back().cloned().unwrap_or((0, Arc::from("")));
        let from = since.and_then(|s| self.kept.iter().find(|(v, _)| *v == s));
        // Versions not kept are all the same question: the whole part.
        let key = from.map(|(v, _)| *v);
        match self.answers.get(&key) {
            Some(answer) => Ok(answer.clone()),
            None => Err(Ask {
                refresh: self.refresh,
                key,
                version,
                sample: self.sample,
                from: from.map(|(_, h)| h.clone()),
                to,
            }),
        }
    }

    /// Keeps an answer made for this refresh.
    pub(crate) fn answered(&mut self, ask: &Ask, answer: Arc<str>) {
        if ask.refresh == self.refresh {
            self.answers.insert(ask.key, answer);
        }
    }
}

impl Ask {
    /// The update, as JSON: the edits from the page's version when it has
    /// one kept and they weigh less than the whole part.
    pub(crate) fn answer(&self) -> Arc<str> {
        let live = match &self.from {
            Some(_) if self.key == Some(self.version) => LiveChange::Same,
            Some(from) => edits_or_whole(from, &self.to),
            None => LiveChange::Whole {
                html: self.to.to_string(),
            },
        };
        let update = PageUpdate {
            version: self.version,
            live,
            sample: self.sample,
        };
        serde_json::to_string(&update).unwrap_or_default().into()
    }
}

/// The line edits from `old` to `new`, or the whole of `new` when they
/// would add half its bytes or more.
fn edits_or_whole(old: &str, new: &str) -> LiveChange {
    let edits = edits(old, new);
    let added: usize = edits
        .iter()
        .map(|e| match e {
            LineEdit::Add(lines) => lines.iter().map(|l| l.len() + 3).sum(),
            LineEdit::Keep(_) | LineEdit::Drop(_) => 12,
        })
        .sum();
    match added.saturating_mul(2) >= new.len() {
        true => LiveChange::Whole {
            html: new.to_string(),
        },
        false => LiveChange::Edits { edits },
    }
}

/// The line edits that turn `old` into `new` (`similar`'s Myers diff,
/// within `DIFF_BUDGET`).
fn edits(old: &str, new: &str) -> Vec<LineEdit> {
    let old: Vec<&str> = old.split('\n').collect();
    let new: Vec<&str> = new.split('\n').collect();
    let deadline = Instant::now() + DIFF_BUDGET;
    let ops = capture_diff_slices_deadline(Algorithm::Myers, &old, &new, Some(deadline));
    let mut out: Vec<LineEdit> = Vec::with_capacity(ops.len());
    let add = |out: &mut Vec<LineEdit>, at: usize, len: usize| {
        out.push(LineEdit::Add(
            new[at..at + len].iter().map(|l| l.to_string()).collect(),
        ))
    };
    for op in ops {
        match op {
            DiffOp::Equal { len, .. } => out.push(LineEdit::Keep(len)),
            DiffOp::Delete { old_len, .. } => out.push(LineEdit::Drop(old_len)),
            DiffOp::Insert {
                new_index, new_len, ..
            } => add(&mut out, new_index, new_len),
            DiffOp::Replace {
                old_len,
                new_index,
                new_len,
                ..
            } => {
                out.push(LineEdit::Drop(old_len));
                add(&mut out, new_index, new_len);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, changed: Option<usize>) -> String {
        let mut lines = vec!["<p>as of 10:00:00</p>".to_string()];
        for i in 0..n {
            let state = if Some(i) == changed {
                "RUNNING"
            } else {
                "PENDING"
            };
            lines.push(format!("<tr data-job=\"{i}\"><td>{state}</td></tr>"));
        }
        lines.join("\n")
    }

    fn update(json: &str) -> PageUpdate {
        serde_json::from_str(json).unwrap()
    }

    fn answer(part: &mut LivePart, since: Option<u64>) -> PageUpdate {
        let json = match part.ask(since) {
            Ok(json) => json,
            Err(ask) => {
                let json = ask.answer();
                part.answered(&ask, json.clone());
                json
            }
        };
        update(&json)
    }

    #[test]
    fn a_page_gets_the_whole_part_then_only_what_changed() {
        let mut part = LivePart::default();
        part.refreshed(rows(1000, None), Sample::default());
        let first = answer(&mut part, None);
        assert_eq!(first.version, 1);
        assert!(matches!(first.live, LiveChange::Whole { .. }));
        // The same rendering again is the same version: nothing to send.
        part.refreshed(rows(1000, None), Sample::default());
        assert_eq!(answer(&mut part, Some(1)).live, LiveChange::Same);
        // One row changed: the edits carry that row only, and applied to
        // the page's version they make the new one exactly.
        part.refreshed(rows(1000, Some(500)), Sample::default());
        let next = answer(&mut part, Some(1));
        assert_eq!(next.version, 2);
        let LiveChange::Edits { edits } = &next.live else {
            panic!("{:?}", next.live);
        };
        let added: Vec<&LineEdit> = edits
            .iter()
            .filter(|e| matches!(e, LineEdit::Add(_)))
            .collect();
        assert_eq!(
            added,
            [&LineEdit::Add(vec![
                "<tr data-job=\"500\"><td>RUNNING</td></tr>".into()
            ])]
        );
        assert_eq!(
            next.live.apply(&rows(1000, None)).as_deref(),
            Some(rows(1000, Some(500)).as_str())
        );
        // The answer is kept for this refresh: asked again, the same.
        assert!(part.ask(Some(1)).is_ok());
    }

    #[test]
    fn a_version_no_longer_kept_or_unknown_gets_the_whole_part() {
        let mut part = LivePart::default();
        for i in 0..KEPT + 2 {
            part.refreshed(rows(10, Some(i)), Sample::default());
        }
        let current = (KEPT + 2) as u64;
        for since in [Some(1), Some(current + 5), Some(u64::MAX), None] {
            let u = answer(&mut part, since);
            assert_eq!(u.version, current);
            assert!(matches!(u.live, LiveChange::Whole { .. }), "{since:?}");
        }
        assert!(part.answers.len() <= KEPT + 1);
    }

    #[test]
    fn edits_that_weigh_as_much_as_the_whole_are_the_whole() {
        let change = edits_or_whole(&rows(5, None), &rows(5, Some(2)).replace("PENDING", "X"));
        assert!(matches!(change, LiveChange::Whole { .. }));
    }

    #[test]
    fn an_answer_made_from_an_older_refresh_is_not_kept() {
        let mut part = LivePart::default();
        part.refreshed(rows(3, None), Sample::default());
        let Err(ask) = part.ask(None) else {
            panic!("nothing was answered yet")
        };
        part.refreshed(rows(3, Some(1)), Sample::default());
        part.answered(&ask, ask.answer());
        assert!(part.ask(None).is_err());
    }
}
