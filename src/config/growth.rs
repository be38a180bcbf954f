//! `task-memory-growth` and `job-memory-growth`: how much more memory a
//! task killed for memory asks for on its next run, and a group's next
//! jobs after one of its jobs ended OUT_OF_MEMORY (a factor, `2` or
//! `1.5`), or `"off"`.

use serde::{Deserialize, Serialize};

/// The accepted forms, for error messages.
pub const GROWTH_FORMS: &str = "a factor from 1.1 to 16 (2, 1.5), or \"off\"";

/// A factor in hundredths (200 is ×2), or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Raw", into = "Raw")]
pub struct MemoryGrowth(Option<u32>);

impl MemoryGrowth {
    /// Off: a task killed for memory fails as any other failure.
    pub const OFF: MemoryGrowth = MemoryGrowth(None);

    /// The factor in hundredths, when on.
    pub fn percent(self) -> Option<u32> {
        self.0
    }
}

impl Default for MemoryGrowth {
    /// ×2: each further run asks twice the memory, up to the largest
    /// worker's, so a task meets at most a few kills before it fits or
    /// fails.
    fn default() -> Self {
        MemoryGrowth(Some(200))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(f64),
    Text(String),
}

impl TryFrom<Raw> for MemoryGrowth {
    type Error = String;

    fn try_from(raw: Raw) -> Result<Self, String> {
        let factor = match raw {
            Raw::Text(t) if t.trim().eq_ignore_ascii_case("off") => return Ok(MemoryGrowth::OFF),
            Raw::Text(t) => t
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("`{t}` is not {GROWTH_FORMS}"))?,
            Raw::Number(n) => n,
        };
        if !(1.1..=16.0).contains(&factor) {
            return Err(format!("{factor} is not {GROWTH_FORMS}"));
        }
        Ok(MemoryGrowth(Some((factor * 100.0).round() as u32)))
    }
}

impl From<MemoryGrowth> for Raw {
    fn from(g: MemoryGrowth) -> Raw {
        match g.0 {
            None => Raw::Text("off".into()),
            Some(p) => Raw::Number(f64::from(p) / 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_and_off_parse_and_the_rest_says_what_is_accepted() {
        let parse = |v: serde_json::Value| serde_json::from_value::<MemoryGrowth>(v);
        assert_eq!(parse(serde_json::json!(2)).unwrap().percent(), Some(200));
        assert_eq!(parse(serde_json::json!(1.5)).unwrap().percent(), Some(150));
        assert_eq!(
            parse(serde_json::json!("1.25")).unwrap().percent(),
            Some(125)
        );
        assert_eq!(parse(serde_json::json!("off")).unwrap(), MemoryGrowth::OFF);
        for bad in [
            serde_json::json!(1),
            serde_json::json!(100),
            serde_json::json!("lots"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("1.1 to 16"), "{e}");
        }
    }
}
