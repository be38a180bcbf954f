//! Checks, their verdicts, and the report they make.

use std::fmt;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// As it should be.
    Pass,
    /// Works, but worth knowing.
    Warn,
    /// A pool would not work: the fix says what to change.
    Fail,
    /// Not checked (and why is in the detail).
    Skip,
}

impl Verdict {
    fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        }
    }
}

/// One check: its name, verdict, what it saw, and the change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    pub fix: Option<String>,
}

/// Every check of a site.
#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The checks that failed.
    pub fn failed(&self) -> usize {
        self.count(Verdict::Fail)
    }

    fn count(&self, v: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == v).count()
    }

    /// The check named `name`.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let mut lines = c.detail.lines();
            writeln!(
                f,
                "{} {:width$}  {}",
                c.verdict.mark(),
                c.name,
                lines.next().unwrap_or_default()
            )?;
            for more in lines {
                writeln!(f, "     {:width$}  {more}", "")?;
            }
            if let Some(fix) = &c.fix {
                writeln!(f, "     {:width$}  fix: {fix}", "")?;
            }
        }
        let (failed, warned) = (self.count(Verdict::Fail), self.count(Verdict::Warn));
        let skipped = self.count(Verdict::Skip);
        match (failed, warned) {
            (0, 0) if skipped == 0 => writeln!(f, "verdict: all {} checks pass", self.checks.len()),
            (0, 0) => writeln!(
                f,
                "verdict: {} checks pass, {skipped} skipped",
                self.checks.len() - skipped
            ),
            (0, w) => writeln!(f, "verdict: no check failed, {w} to look at"),
            (n, w) => writeln!(f, "verdict: {n} failed, {w} to look at"),
        }
    }
}

/// A check with its verdict, what was seen and, unless it passed, the fix.
pub(super) fn check(
    name: &'static str,
    verdict: Verdict,
    detail: String,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        verdict,
        detail,
        fix,
    }
}
