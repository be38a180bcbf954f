//! `Walltime`: a job's time limit in every form `sbatch --time` takes, plus
//! humane ones.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ValueError;

/// The forms `Walltime` accepts, quoted in every parse error.
pub const WALLTIME_FORMS: &str = "Slurm's MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS \
(e.g. `30`, `00:30:00`, `1-12`), or a duration such as `90m`, `1h30m`, `2d`";

/// A job's time limit, held in whole seconds and always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Walltime(u64);

impl Walltime {
    /// A limit of `secs` seconds; `None` for zero.
    pub const fn from_secs(secs: u64) -> Option<Self> {
        if secs == 0 {
            None
        } else {
            Some(Walltime(secs))
        }
    }

    /// A limit of `mins` minutes, at least one.
    pub const fn from_mins(mins: u64) -> Self {
        Walltime(if mins == 0 {
            60
        } else {
            mins.saturating_mul(60)
        })
    }

    /// The limit in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// The limit as a `Duration`.
    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl fmt::Display for Walltime {
    /// Slurm's `HH:MM:SS`, or `D-HH:MM:SS` from one day on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, rest) = (self.0 / 86_400, self.0 % 86_400);
        let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
        if days > 0 {
            write!(f, "{days}-{h:02}:{m:02}:{s:02}")
        } else {
            write!(f, "{h:02}:{m:02}:{s:02}")
        }
    }
}

/// The longest walltime drover accepts: Slurm's own limit on a time
/// limit is 365 days (beyond it only `INFINITE`).
const MAX_WALLTIME_SECS: u64 = 365 * 86_400;

impl FromStr for Walltime {
    type Err = ValueError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ValueError::new(input, reason, WALLTIME_FORMS);
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let secs = if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'-')
        {
            slurm_form(s).map_err(|reason| bad(&reason))?
        } else {
            humantime::parse_duration(s)
                .map_err(|e| bad(&format!("it is not a duration ({e})")))?
                .as_secs()
        };
        if secs > MAX_WALLTIME_SECS {
            return Err(bad(
                "it is longer than Slurm's longest time limit, 365 days",
            ));
        }
        Walltime::from_secs(secs).ok_or_else(|| bad("it must be longer than zero"))
    }
}

/// Seconds in one of sbatch's `--time` forms.
fn slurm_form(s: &str) -> Result<u64, String> {
    let field = |part: &str, what: &str| -> Result<u64, String> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the {what} `{part}` is not a number"));
        }
        part.parse::<u64>()
            .map_err(|_| format!("the {what} `{part}` is too large"))
    };
    let below = |value: u64, limit: u64, what: &str| -> Result<u64, String> {
        if value < limit {
            Ok(value)
        } else {
            Err(format!("{what} must be below {limit}, got {value}"))
        }
    };
    let total = |d: u64, h: u64, m: u64, sec: u64| -> Result<u64, String> {
        d.checked_mul(86_400)
            .and_then(|x| x.checked_add(h.checked_mul(3600)?))
            .and_then(|x| x.checked_add(m.checked_mul(60)?))
            .and_then(|x| x.checked_add(sec))
            .ok_or_else(|| "it is too large".to_string())
    };
    if let Some((days, rest)) = s.split_once('-') {
        let d = field(days, "day count")?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (h, m, sec) = match parts.as_slice() {
            [h] => (field(h, "hours")?, 0, 0),
            [h, m] => (field(h, "hours")?, field(m, "minutes")?, 0),
            [h, m, sec] => (
                field(h, "hours")?,
                field(m, "minutes")?,
                field(sec, "seconds")?,
            ),
            _ => return Err("too many `:` after the day count".into()),
        };
        total(
            d,
            below(h, 24, "hours")?,
            below(m, 60, "minutes")?,
            below(sec, 60, "seconds")?,
        )
    } else {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [m] => total(0, 0, field(m, "minutes")?, 0),
            [m, sec] => total(
                0,
                0,
                field(m, "minutes")?,
                below(field(sec, "seconds")?, 60, "seconds")?,
            ),
            [h, m, sec] => total(
                0,
                field(h, "hours")?,
                below(field(m, "minutes")?, 60, "minutes")?,
                below(field(sec, "seconds")?, 60, "seconds")?,
            ),
            _ => Err("too many `:`".into()),
        }
    }
}

impl TryFrom<String> for Walltime {
    type Error = ValueError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Walltime> for String {
    fn from(w: Walltime) -> String {
        w.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_sbatch_form_and_humane_ones() {
        let cases = [
            ("30", 30 * 60),
            ("90", 90 * 60),
            ("30:15", 30 * 60 + 15),
            ("00:30:00", 30 * 60),
            ("25:00:00", 25 * 3600),
            ("1-12", 36 * 3600),
            ("1-12:30", 36 * 3600 + 1800),
            ("2-00:00:05", 2 * 86_400 + 5),
            ("90m", 90 * 60),
            ("1h30m", 90 * 60),
            ("1h 30m", 90 * 60),
            ("2d", 2 * 86_400),
            ("45s", 45),
        ];
        for (input, secs) in cases {
            assert_eq!(
                input.parse::<Walltime>().unwrap().as_secs(),
                secs,
                "{input}"
            );
        }
    }

    #[test]
    fn renders_as_slurm_time() {
        let cases = [
            ("30", "00:30:00"),
            ("1h30m", "01:30:00"),
            ("1-12", "1-12:00:00"),
            ("25:00:00", "1-01:00:00"),
        ];
        for (input, shown) in cases {
            let w: Walltime = input.parse().unwrap();
            assert_eq!(w.to_string(), shown);
            assert_eq!(shown.parse::<Walltime>().unwrap(), w);
        }
    }
}
