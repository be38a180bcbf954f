//! Reading the ends of log files: job logs, Dask's scheduler log.

use std::path::Path;

/// The last `n` lines of a file, if it exists and has any.
pub fn tail(path: &Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return None;
    }
    Some(lines[lines.len().saturating_sub(n)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_and_nothing_of_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.out");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2).as_deref(), Some("b\nc"));
        assert_eq!(tail(&path, 9).as_deref(), Some("a\nb\nc"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(tail(&path, 2), None);
        assert_eq!(tail(&dir.path().join("none"), 2), None);
    }
}
