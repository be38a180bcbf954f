//! The shapes one field takes in Slurm's JSON across releases, read into
//! one meaning each. The openapi v0.0.36 to v0.0.38 plugins (Slurm 22.05)
//! write plain numbers, one state word and an exit code as a wait status;
//! the data_parser plugins since v0.0.39 (Slurm 23.02 on; here 24.11 and
//! 26.05) write numbers as `{set, infinite, number}`, states as lists of
//! flags with the base state first, and exit codes as `{status,
//! return_code, signal}`. `squeue --json` and slurmrestd's job listings
//! share them.

use serde::Deserialize;

/// A number: plain, or `{set, infinite, number}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(crate) enum Number {
    Plain(i64),
    Set {
        #[serde(default)]
        set: bool,
        #[serde(default)]
        infinite: bool,
        #[serde(default)]
        number: i64,
    },
}

impl Number {
    /// Its value; `None` when it is unset or infinite.
    pub fn value(self) -> Option<i64> {
        match self {
            Number::Plain(n) => Some(n),
            Number::Set {
                set: true,
                infinite: false,
                number,
            } => Some(number),
            Number::Set { .. } => None,
        }
    }

    /// Its value when it is set, finite and not negative.
    pub fn unsigned(self) -> Option<u64> {
        self.value().and_then(|n| u64::try_from(n).ok())
    }
}

/// A job's state: one word, or a list whose first word is the base state
/// and whose others are flags (`["PENDING", "REQUEUED"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum States {
    One(String),
    Flags(Vec<String>),
}

impl States {
    /// The base state (`RUNNING`), empty when none is said.
    pub fn base(&self) -> &str {
        match self {
            States::One(s) => s,
            States::Flags(all) => all.first().map_or("", String::as_str),
        }
    }
}

impl Default for States {
    fn default() -> Self {
        States::One(String::new())
    }
}

/// How a job exited: a wait status (the code in its high byte), or its
/// parts.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(crate) enum Exit {
    WaitStatus(i64),
    Parts {
        #[serde(default)]
        return_code: Option<Number>,
    },
}

impl Exit {
    /// The exit code, when said.
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::WaitStatus(status) => Some(((status >> 8) & 0xff) as i32),
            Exit::Parts { return_code } => return_code
                .and_then(Number::value)
                .and_then(|n| i32::try_from(n).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(json: &str) -> Option<i64> {
        serde_json::from_str::<Number>(json).unwrap().value()
    }

    #[test]
    fn numbers_read_in_both_shapes() {
        assert_eq!(number("7"), Some(7));
        assert_eq!(
            number(r#"{"set":true,"infinite":false,"number":7}"#),
            Some(7)
        );
        assert_eq!(number(r#"{"set":false,"infinite":false,"number":0}"#), None);
        assert_eq!(number(r#"{"set":false,"infinite":true,"number":0}"#), None);
        let negative: Number = serde_json::from_str("-1").unwrap();
        assert_eq!(negative.unsigned(), None);
    }

    #[test]
    fn states_and_exit_codes_read_in_both_shapes() {
        let s: States = serde_json::from_str(r#"["PENDING","REQUEUED"]"#).unwrap();
        assert_eq!(s.base(), "PENDING");
        let s: States = serde_json::from_str(r#""FAILED""#).unwrap();
        assert_eq!(s.base(), "FAILED");
        let e: Exit = serde_json::from_str("768").unwrap();
        assert_eq!(e.code(), Some(3));
        let e: Exit = serde_json::from_str(r#"{"status":["ERROR"],"return_code":{"set":true,"infinite":false,"number":3},"signal":{"id":{"set":false,"infinite":false,"number":0},"name":""}}"#).unwrap();
        assert_eq!(e.code(), Some(3));
    }
}
