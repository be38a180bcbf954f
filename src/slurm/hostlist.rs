//! Slurm's host lists (`node[1-3,7],gpu[01-02]`) expanded into names.

/// The most names one list expands to: a longer one is a typo or an
/// attack on our memory, and stops there.
const MAX_NAMES: usize = 100_000;

/// The names in `list`. Ranges keep their zero padding (`[08-10]` is
/// `08 09 10`); a part that does not parse is kept as written.
pub fn expand(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in split_top(list) {
        expand_part(part, &mut out);
        if out.len() >= MAX_NAMES {
            out.truncate(MAX_NAMES);
            break;
        }
    }
    out
}

/// `list` split at the commas outside brackets.
fn split_top(list: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// One part: a prefix, an optional bracketed set of ranges, the rest
/// (which may hold further brackets).
fn expand_part(part: &str, out: &mut Vec<String>) {
    let Some(open) = part.find('[') else {
        out.push(part.to_string());
        return;
    };
    let Some(close) = part[open..].find(']').map(|c| open + c) else {
        out.push(part.to_string());
        return;
    };
    let (prefix, set, rest) = (&part[..open], &part[open + 1..close], &part[close + 1..]);
    let mut tails = Vec::new();
    expand_part(rest, &mut tails);
    if tails.is_empty() {
        tails.push(String::new());
    }
    for range in set.split(',') {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let (Ok(lo), Ok(hi)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
            out.push(part.to_string());
            return;
        };
        let width = a.trim().len();
        for n in lo..=hi {
            for tail in &tails {
                out.push(format!("{prefix}{n:0width$}{tail}"));
                if out.len() >= MAX_NAMES {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_expand_as_slurm_writes_them() {
        assert_eq!(expand("node[1-2]"), ["node1", "node2"]);
        assert_eq!(expand("node1"), ["node1"]);
        assert_eq!(
            expand("gpu[08-10],cpu5"),
            ["gpu08", "gpu09", "gpu10", "cpu5"]
        );
        assert_eq!(expand("n[1,3-4]"), ["n1", "n3", "n4"]);
        assert_eq!(expand("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(expand(""), Vec::<String>::new());
        assert_eq!(expand("bad[x-y]"), ["bad[x-y]"]);
        assert_eq!(expand("n[0-99999999999]").len(), MAX_NAMES);
    }
}
