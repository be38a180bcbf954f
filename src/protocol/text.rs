//! Text from the other side of the wire (worker names, reasons, Slurm's
//! words) made fit for one line of a terminal or a log: control characters
//! (ESC, NUL, newlines) escaped, length bounded. A reason is kept at most
//! `MAX_REASON` bytes, so a 7 MB `deregister` reason is neither stored nor
//! logged whole.

/// The most bytes of a reason the scheduler keeps.
pub const MAX_REASON: usize = 1024;

/// `text` on one line: each control character as `\xNN` (`\n` and `\t`
/// too), cut to at most `max` bytes at a character boundary, with `…` when
/// it was cut.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let piece = if c.is_control() {
            format!("\\x{:02x}", u32::from(c) & 0xff)
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > max {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// `one_line` with the bound of a reason.
pub fn reason(text: &str) -> String {
    one_line(text, MAX_REASON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_bounded() {
        assert_eq!(one_line("a\x1b[2Jb\0c\nd", 100), "a\\x1b[2Jb\\x00c\\x0ad");
        assert_eq!(one_line("héllo", 2), "h…");
        assert_eq!(one_line("héllo", 3), "hé…");
        let big = reason(&"x".repeat(7_000_000));
        assert!(big.len() <= MAX_REASON + '…'.len_utf8());
    }
}
