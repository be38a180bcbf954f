//! `Memory`: an amount of memory as users write it and as Slurm wants it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValueError;

/// The forms `Memory` accepts, quoted in every parse error.
pub const MEMORY_FORMS: &str = "a number of bytes (`1073741824`) or a number with a unit: \
decimal kB/MB/GB/TB (powers of 1000), binary KiB/MiB/GiB/TiB or Slurm-style K/M/G/T \
(powers of 1024); e.g. `4GB`, `4 GiB`, `512MB`, `1.5G`";

const MIB: u64 = 1 << 20;

/// An amount of memory, held in bytes.
///
/// Units follow their usual meaning: `GB` is 10^9 bytes (as in dask-jobqueue),
/// `GiB` is 2^30 bytes, and a lone `G` is 2^30 bytes because that is what Slurm
/// means by it. Rendering for Slurm always rounds up to whole MiB, so a job is
/// never given less than was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "MemoryRepr", into = "String")]
pub struct Memory(u64);

/// The largest amount drover takes: 64 PiB, far above any node, and low
/// enough that no conversion of it overflows.
pub const MAX_MEMORY: u64 = 64 << 50;

impl Memory {
    /// An amount of exactly `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Memory(bytes)
    }

    /// An amount of `mib` mebibytes (at most `MAX`).
    pub const fn from_mib(mib: u64) -> Self {
        let bytes = mib.saturating_mul(MIB);
        Memory(if bytes > MAX_MEMORY {
            MAX_MEMORY
        } else {
            bytes
        })
    }

    /// The amount in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Whole MiB, rounded up: what Slurm's `M` unit needs to cover this amount.
    pub fn mib_ceil(self) -> u64 {
        self.0.div_ceil(MIB)
    }

    /// This amount split evenly `parts` ways, each share rounded up.
    pub fn split_ceil(self, parts: u32) -> Memory {
        Memory(self.0.div_ceil(u64::from(parts.max(1))))
    }

    /// A rounded form for people: `23.5GiB`, `512MiB`.
    pub fn human(self) -> String {
        let units = [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, factor) in units {
            if self.0 >= factor {
                let v = self.0 as f64 / factor as f64;
                return if v.fract() == 0.0 {
                    format!("{v}{unit}")
                } else {
                    format!("{v:.1}{unit}")
                };
            }
        }
        format!("{}B", self.0)
    }

    /// The amount in Slurm's `--mem` syntax: the largest binary unit that
    /// represents it exactly, else MiB rounded up.
    pub fn to_slurm(self) -> String {
        let mib = self.mib_ceil();
        for (unit, factor) in [("T", 1u64 << 20), ("G", 1 << 10)] {
            if mib >= factor && mib.is_multiple_of(factor) && Some(self.0) == mib.checked_mul(MIB) {
                return format!("{}{unit}", mib / factor);
            }
        }
        format!("{mib}M")
    }
}

impl Memory {
    /// The amount as dask-jobqueue writes `--mem`: in the largest of G, M
    /// and K that is at most the amount, rounded up (28 GB is `27G`).
    pub fn to_slurm_whole_unit(self) -> String {
        for (unit, factor) in [("G", 1u64 << 30), ("M", 1 << 20)] {
            if self.0 >= factor {
                return format!("{}{unit}", self.0.div_ceil(factor));
            }
        }
        format!("{}K", self.0.div_ceil(1 << 10).max(1))
    }
}

impl fmt::Display for Memory {
    /// A short human form that parses back to the same number of bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("TB", 1_000_000_000_000),
            ("GB", 1_000_000_000),
            ("MiB", 1 << 20),
            ("MB", 1_000_000),
            ("KiB", 1 << 10),
            ("kB", 1_000),
        ];
        for (unit, factor) in units {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl FromStr for Memory {
    type Err = ValueError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ValueError::new(input, reason, MEMORY_FORMS);
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit = unit.trim_start();
        if number.is_empty() {
            return Err(bad("it does not start with a number"));
        }
        let factor: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            _ => return Err(bad(&format!("`{unit}` is not a unit of memory"))),
        };
        let bytes = if let Some((whole, frac)) = number.split_once('.') {
            if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
                return Err(bad("it is not a number"));
            }
            let value: f64 = number.parse().map_err(|_| bad("it is not a number"))?;
            let bytes = (value * factor as f64).ceil();
            if !bytes.is_finite() || bytes >= u64::MAX as f64 {
                return Err(bad("it is too large"));
            }
            bytes as u64
        } else {
            let value: u64 = number.parse().map_err(|_| bad("it is too large"))?;
            value
                .checked_mul(factor)
                .ok_or_else(|| bad("it is too large"))?
        };
        if bytes == 0 {
            return Err(bad("it must be more than zero"));
        }
        if bytes > MAX_MEMORY {
            return Err(bad("it is too large (at most 65536TiB)"));
        }
        Ok(Memory(bytes))
    }
}

/// What a config file may hold for a memory value: a string with a unit or a
/// bare number of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum MemoryRepr {
    Text(String),
    Bytes(u64),
}

impl TryFrom<MemoryRepr> for Memory {
    type Error = ValueError;

    fn try_from(repr: MemoryRepr) -> Result<Self, Self::Error> {
        match repr {
            MemoryRepr::Text(s) => s.parse(),
            MemoryRepr::Bytes(b) => b.to_string().parse(),
        }
    }
}

impl From<Memory> for String {
    fn from(m: Memory) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_binary_and_slurm_units() {
        let cases = [
            ("4GB", 4_000_000_000),
            ("4 GiB", 4 << 30),
            ("512MB", 512_000_000),
            ("1.5G", 3 << 29),
            ("1073741824", 1 << 30),
            ("100b", 100),
            ("2k", 2048),
            ("2kB", 2000),
            ("1T", 1 << 40),
            ("0.5 MiB", 1 << 19),
        ];
        for (input, bytes) in cases {
            assert_eq!(input.parse::<Memory>().unwrap().bytes(), bytes, "{input}");
        }
    }

    #[test]
    fn renders_for_slurm_rounded_up_never_below() {
        let cases = [
            ("4GiB", "4G"),
            ("8GB", "7630M"),
            ("512MB", "489M"),
            ("1.5G", "1536M"),
            ("1", "1M"),
            ("2T", "2T"),
            ("1025MiB", "1025M"),
        ];
        for (input, slurm) in cases {
            let m: Memory = input.parse().unwrap();
            assert_eq!(m.to_slurm(), slurm, "{input}");
            let rendered: Memory = slurm.parse().unwrap();
            assert!(rendered >= m, "{input} rendered below what was asked");
        }
    }

    #[test]
    fn display_round_trips() {
        for input in ["4GB", "4GiB", "1.5G", "1", "12345"] {
            let m: Memory = input.parse().unwrap();
            assert_eq!(m.to_string().parse::<Memory>().unwrap(), m);
        }
    }

    #[test]
    fn whole_units_round_up_as_dask_jobqueue_does() {
        let m = |s: &str| s.parse::<Memory>().unwrap().to_slurm_whole_unit();
        assert_eq!(m("28GB"), "27G");
        assert_eq!(m("100G"), "100G");
        assert_eq!(m("8GB"), "8G");
        assert_eq!(m("500MB"), "477M");
        assert_eq!(m("1000"), "1K");
    }
}
