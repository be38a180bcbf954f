//! What Slurm allocated each job of a pool and for how long, from
//! accounting: one `sacct --allocations` line per job (no steps), its
//! times as Unix seconds (`SLURM_TIME_FORMAT=%s`), the allocation as TRES
//! (`AllocTRES`, with Slurm's own `billing`) and the energy where Slurm
//! measures it (`ConsumedEnergyRaw`, joules; empty where it does not). A
//! running job's end is `Unknown`, a pending job's start too.
//!
//! A pool's jobs are asked for by their names (each carries its pool's
//! cluster id, and its group's name) since the pool began: one call finds
//! every job it ever submitted, those that never registered and those
//! from before a restart included, with nothing kept on our side.

use super::tres::{self, Tres};
use super::{JobRef, SlurmError};

/// The fields asked for, in this order.
/// The name comes last: a name holding `|` still reads whole.
const FORMAT: &str = "JobID,Start,End,AllocTRES,ConsumedEnergyRaw,JobName";

/// The most names one call asks about (a pool's groups).
pub(crate) const MAX_NAMES: usize = 1_000;

/// The most lines read: one per job of the largest batch asked about.
const MAX_LINES: usize = 100_000;

/// One job's allocation as accounting records it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAllocation {
    /// Which job or array task.
    pub job: JobRef,
    /// Its name (which tells a pool's group).
    pub name: String,
    /// When it started (Unix seconds); `None` while it waits.
    pub start_s: Option<u64>,
    /// When it ended (Unix seconds); `None` while it runs.
    pub end_s: Option<u64>,
    /// What it was allocated (nothing while it waits).
    pub tres: Tres,
    /// Joules, where Slurm measured them.
    pub energy_joules: Option<u64>,
}

/// The environment sacct is run with: times as Unix seconds.
pub(crate) fn env() -> Vec<(String, String)> {
    vec![("SLURM_TIME_FORMAT".into(), "%s".into())]
}

/// The arguments for the allocations of the jobs named `names` that were
/// in Slurm's records in the last `seconds` (sacct's own relative time,
/// so no clock or time zone of ours is involved): the jobs' own lines
/// only (`--allocations`), not their steps'. Every user's jobs of those
/// names when run as an administrator; the names carry a cluster id.
pub(crate) fn args(names: &[String], seconds: u64) -> Vec<String> {
    vec![
        "--allocations".to_string(),
        "--noheader".into(),
        "--parsable2".into(),
        format!("--format={FORMAT}"),
        format!("--name={}", names.join(",")),
        format!("--starttime=now-{seconds}seconds"),
    ]
}

fn unexpected(line: &str) -> SlurmError {
    SlurmError::Unexpected {
        command: "sacct --allocations".into(),
        output: line.chars().take(200).collect(),
    }
}

/// A time field: Unix seconds, or `Unknown`/`None`/empty for none.
fn time(field: &str, line: &str) -> Result<Option<u64>, SlurmError> {
    match field.trim() {
        "" | "Unknown" | "None" => Ok(None),
        t => t.parse().map(Some).map_err(|_| unexpected(line)),
    }
}

/// Reads sacct's lines; records that are no single job (a pending
/// array's `12_[4-5]`, a heterogeneous job's `12+0`) are left out.
pub(crate) fn parse(text: &str) -> Result<Vec<JobAllocation>, SlurmError> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .take(MAX_LINES)
        .filter(|l| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.splitn(6, '|').collect();
        let [id, start, end, alloc, energy, name] = fields[..] else {
            return Err(unexpected(line));
        };
        let Ok(job) = id.trim().parse::<JobRef>() else {
            if id.contains(['[', '+', '.']) {
                continue;
            }
            return Err(unexpected(line));
        };
        let energy_joules = match energy.trim() {
            "" | "0" => None,
            e => Some(e.parse().map_err(|_| unexpected(line))?),
        };
        out.push(JobAllocation {
            job,
            name: name.to_string(),
            start_s: time(start, line)?,
            end_s: time(end, line)?,
            tres: tres::parse("sacct AllocTRES", alloc).map_err(|_| unexpected(line))?,
            energy_joules,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::JobId;

    #[test]
    fn one_call_asks_for_every_name_since_the_pool_began() {
        let a = args(&["w-1".into(), "w-big-1".into()], 3_600);
        assert!(a.contains(&"--name=w-1,w-big-1".to_string()), "{a:?}");
        assert!(a.contains(&"--starttime=now-3600seconds".to_string()));
        assert!(a.contains(&"--allocations".to_string()));
    }

    #[test]
    fn jobs_read_with_their_times_tres_and_energy() {
        // As Slurm 22.05 printed them here (the energy of the first made up:
        // this machine gathers none).
        let text = "\
3_0|1796641088|1796641150|billing=8,cpu=8,mem=1908M,node=1|5120|w-a|b
3_1|1796641088|Unknown|billing=12,cpu=8,mem=1908M,node=1||w-a|b
3_[2-5]|Unknown|Unknown|||w-a|b
7|Unknown|Unknown|||w-c
";
        let a = parse(text).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(
            a[0].job,
            JobRef::Task {
                array: JobId::new(3),
                task: 0
            }
        );
        assert_eq!(
            (a[0].start_s, a[0].end_s),
            (Some(1796641088), Some(1796641150))
        );
        assert_eq!((a[0].tres.cpus, a[0].tres.billing), (8, Some(8.0)));
        assert_eq!(a[0].energy_joules, Some(5120));
        assert_eq!((a[0].name.as_str(), a[2].name.as_str()), ("w-a|b", "w-c"));
        assert_eq!((a[1].end_s, a[1].energy_joules), (None, None));
        assert_eq!(a[1].tres.billing, Some(12.0));
        assert_eq!((a[2].start_s, a[2].tres), (None, Tres::default()));
    }

    #[test]
    fn lines_that_are_not_sacct_s_are_refused_with_the_line() {
        for bad in [
            "3|1|2|cpu=1|",
            "x|1|2|cpu=1||n",
            "3|soon|2|cpu=1||n",
            "3|1|2|cpu=one||n",
            "3|1|2|cpu=1|lots|n",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("sacct") && e.contains(bad.split('|').next().unwrap()),
                "{e}"
            );
        }
    }
}
