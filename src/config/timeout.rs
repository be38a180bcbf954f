//! `Timeout`: a span of time given as seconds or as a humane duration.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ValueError;

/// The forms `Timeout` accepts, quoted in every parse error.
pub const TIMEOUT_FORMS: &str =
    "a number of seconds (`60`, `0.5`) or a duration such as `90s`, `5m`, `1h30m`";

/// A span of time for timeouts and intervals: `60` is sixty seconds, `5m`
/// five minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "TimeoutRepr", into = "String")]
pub struct Timeout(Duration);

impl Timeout {
    /// A timeout of `d`.
    pub const fn new(d: Duration) -> Self {
        Timeout(d)
    }

    /// The span as a `Duration`.
    pub const fn duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{}ms", self.0.as_millis())
        }
    }
}

/// The longest interval or timeout drover takes: a year.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 86_400);

impl FromStr for Timeout {
    type Err = ValueError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let bad = |reason: &str| ValueError::new(input, reason, TIMEOUT_FORMS);
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let d = if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let secs: f64 = s.parse().map_err(|_| bad("it is not a number"))?;
            Duration::try_from_secs_f64(secs).map_err(|_| bad("it is out of range"))?
        } else {
            humantime::parse_duration(s).map_err(|e| bad(&format!("it is not a duration ({e})")))?
        };
        // Longer is never meant, and clock arithmetic on it could overflow.
        if d > MAX_TIMEOUT {
            return Err(bad("it is longer than a year"));
        }
        Ok(Timeout(d))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeoutRepr {
    Text(String),
    Seconds(f64),
}

impl TryFrom<TimeoutRepr> for Timeout {
    type Error = ValueError;

    fn try_from(repr: TimeoutRepr) -> Result<Self, Self::Error> {
        match repr {
            TimeoutRepr::Text(s) => s.parse(),
            TimeoutRepr::Seconds(secs) => secs.to_string().parse(),
        }
    }
}

impl From<Timeout> for String {
    fn from(t: Timeout) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_durations() {
        let cases = [
            ("60", 60_000),
            ("0.5", 500),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
        ];
        for (input, ms) in cases {
            let t: Timeout = input.parse().unwrap();
            assert_eq!(t.duration().as_millis(), ms, "{input}");
            assert_eq!(t.to_string().parse::<Timeout>().unwrap(), t);
        }
        for huge in ["18446744073709551615", "500000000y", "367d"] {
            let e = huge.parse::<Timeout>().unwrap_err().to_string();
            assert!(
                e.contains("out of range") || e.contains("longer than a year"),
                "{huge}: {e}"
            );
        }
    }
}
