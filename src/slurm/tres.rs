//! A job's trackable resources as Slurm prints them (`AllocTRES` in sacct,
//! `tres-alloc` in squeue): `billing=4,cpu=4,gres/gpu=1,mem=4000M,node=1`.
//! Only what a pool's cost needs is kept; other kinds (`node`, `energy`,
//! licenses) are skipped. `billing` is Slurm's own figure from the
//! partition's `TRESBillingWeights` (the CPU count where none are set), so
//! drover never re-implements the weighting (`PriorityFlags=MAX_TRES`
//! included).

use super::SlurmError;

/// The longest TRES string read; Slurm's are a few dozen bytes.
const MAX_LEN: usize = 4096;

/// What Slurm allocated a job.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tres {
    /// CPUs (`cpu=`).
    pub cpus: u64,
    /// Memory in bytes (`mem=`, Slurm's suffixes K, M, G, T, P: powers of 1024).
    pub memory_bytes: u64,
    /// GPUs (`gres/gpu=`; the typed `gres/gpu:NAME=` ones summed when
    /// the untyped count is missing).
    pub gpus: u64,
    /// Slurm's billing TRES, when it printed one.
    pub billing: Option<f64>,
}

fn unexpected(what: &str, text: &str) -> SlurmError {
    SlurmError::Unexpected {
        command: what.into(),
        output: text.chars().take(200).collect(),
    }
}

/// A figure of Slurm's with a binary suffix (`4000M`, `1.50G`, `512K`,
/// `2T`, `3P`) in units: bytes, scaled as Slurm means the suffix; with
/// none, `default` (`M` in TRES strings, `B` in sacct's MaxRSS). `None`
/// for what is not such a figure (a negative one, another suffix).
pub(crate) fn scaled(value: &str, default: char) -> Option<f64> {
    let (number, unit) = match value.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&value[..i], c.to_ascii_uppercase()),
        _ => (value, default),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        'P' => 50,
        _ => return None,
    };
    let n: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some(n * (1u64 << shift) as f64)
}

/// A TRES memory figure in bytes; beyond 2^63 bytes no Slurm has
/// allocated, so it is refused rather than wrapped.
fn memory(value: &str) -> Option<u64> {
    scaled(value, 'M').filter(|b| *b < 9.2e18).map(|b| b as u64)
}

/// Reads one TRES string; `what` names its source in an error
/// (`sacct AllocTRES`). An empty string (a job not yet allocated) is
/// nothing allocated.
pub fn parse(what: &str, text: &str) -> Result<Tres, SlurmError> {
    let text = text.trim();
    if text.len() > MAX_LEN {
        return Err(unexpected(what, text));
    }
    let mut tres = Tres::default();
    let mut typed_gpus: u64 = 0;
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let (kind, value) = item.split_once('=').ok_or_else(|| unexpected(what, text))?;
        let whole = || value.parse::<u64>().map_err(|_| unexpected(what, text));
        match kind.to_ascii_lowercase().as_str() {
            "cpu" => tres.cpus = whole()?,
            "mem" => tres.memory_bytes = memory(value).ok_or_else(|| unexpected(what, text))?,
            "gres/gpu" => tres.gpus = whole()?,
            k if k.starts_with("gres/gpu:") => typed_gpus = typed_gpus.saturating_add(whole()?),
            "billing" => {
                let b: f64 = value.parse().map_err(|_| unexpected(what, text))?;
                if !(b.is_finite() && b >= 0.0) {
                    return Err(unexpected(what, text));
                }
                tres.billing = Some(b);
            }
            _ => {}
        }
    }
    if tres.gpus == 0 {
        tres.gpus = typed_gpus;
    }
    Ok(tres)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_strings_read_as_their_resources() {
        let t = parse(
            "sacct",
            "billing=6,cpu=4,gres/gpu=2,gres/gpu:a100=2,mem=4000M,node=1",
        )
        .unwrap();
        assert_eq!(
            t,
            Tres {
                cpus: 4,
                memory_bytes: 4000 << 20,
                gpus: 2,
                billing: Some(6.0),
            }
        );
        let t = parse("squeue", "cpu=1,mem=1.50G,node=1,gres/gpu:v100=1").unwrap();
        assert_eq!((t.cpus, t.memory_bytes, t.gpus), (1, 3 << 29, 1));
        assert_eq!(t.billing, None);
        assert_eq!(parse("sacct", "").unwrap(), Tres::default());
        assert_eq!(parse("sacct", "mem=100").unwrap().memory_bytes, 100 << 20);
    }

    #[test]
    fn what_is_not_slurm_s_is_refused_with_the_text() {
        for bad in [
            "cpu",
            "cpu=-1",
            "cpu=4x",
            "mem=12Q",
            "mem=-5M",
            "billing=NaN",
            "billing=-2",
            "mem=99999999999P",
        ] {
            let e = parse("sacct AllocTRES", bad).unwrap_err().to_string();
            assert!(
                e.contains("sacct AllocTRES") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        assert!(parse("sacct", &"cpu=1,".repeat(1000)).is_err());
    }
}
