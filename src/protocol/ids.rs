//! The names things go by on the wire: a cluster's id and secret token, a
//! worker's and a task's number.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Text that does not name what it was read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {what}")]
pub struct IdError {
    /// The text as given.
    pub value: String,
    /// What it should have been, with an example.
    pub what: &'static str,
}

/// Random bytes from the operating system.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // Without randomness from the OS no token is safe to make: stopping is right.
    getrandom::fill(&mut buf).expect("the operating system provides randomness");
    buf
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Identifies one cluster (pool) across the scheduler, its jobs and its files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterId(String);

impl ClusterId {
    /// A fresh random id (8 hex digits).
    pub fn generate() -> Self {
        ClusterId(hex(&random_bytes::<4>()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClusterId {
    type Err = IdError;

    /// 1 to 32 ASCII letters and digits: it ends up in job names and file names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(ClusterId(s.to_string()))
        } else {
            Err(IdError {
                value: s.to_string(),
                what: "a cluster id (1 to 32 letters and digits, such as 3fa8c21e)",
            })
        }
    }
}

impl TryFrom<String> for ClusterId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ClusterId> for String {
    fn from(id: ClusterId) -> String {
        id.0
    }
}

/// The secret every control-plane request carries. Its `Debug` form hides
/// it, so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// A fresh random token of 256 bits.
    pub fn generate() -> Self {
        Token(hex(&random_bytes::<32>()))
    }

    /// The secret itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// A worker's number in its scheduler's registry, shown as `w3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

impl FromStr for WorkerId {
    type Err = IdError;

    /// `w3` or `3`, as `drover status` shows it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('w')
            .unwrap_or(s)
            .parse()
            .map(WorkerId)
            .map_err(|_| IdError {
                value: s.to_string(),
                what: "a worker id (the id `drover status` shows, such as w3)",
            })
    }
}

/// A task's number in its scheduler, shown as `t12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl FromStr for TaskId {
    type Err = IdError;

    /// `t12` or `12`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('t')
            .unwrap_or(s)
            .parse()
            .map(TaskId)
            .map_err(|_| IdError {
                value: s.to_string(),
                what: "a task id (such as t12 or 12)",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hidden_in_debug() {
        let a = Token::generate();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, Token::generate());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn ids_parse_as_they_print_and_name_the_accepted_form() {
        assert_eq!("w3".parse::<WorkerId>().unwrap(), WorkerId(3));
        assert_eq!("3".parse::<WorkerId>().unwrap().to_string(), "w3");
        assert_eq!("t12".parse::<TaskId>().unwrap(), TaskId(12));
        let e = "x1".parse::<TaskId>().unwrap_err().to_string();
        assert!(e.contains("such as t12"), "{e}");
        assert!("ww3".parse::<WorkerId>().is_err());
        assert!("a/b".parse::<ClusterId>().is_err());
        let id = ClusterId::generate();
        assert_eq!(id.to_string().parse::<ClusterId>().unwrap(), id);
        // A cluster id from the wire is checked like one from a flag.
        assert!(serde_json::from_str::<ClusterId>("\"../x\"").is_err());
    }
}
