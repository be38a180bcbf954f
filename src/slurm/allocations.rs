//! What Slurm allocated each job and for how long, from accounting: one
//! `sacct -X` line per job (no steps), its times as Unix seconds
//! (`SLURM_TIME_FORMAT=%s`), the allocation as TRES (`AllocTRES`, with
//! Slurm's own `billing`) and the energy where Slurm measures it
//! (`ConsumedEnergyRaw`, joules; empty where it does not). A running
//! job's end is `Unknown`, a pending job's start too.

use super::tres::{self, Tres};
use super::{JobRef, SlurmError};

/// The fields asked for, in this order.
const FORMAT: &str = "JobID,Start,End,AllocTRES,ConsumedEnergyRaw";

/// The most lines read: one per job of the largest batch asked about.
const MAX_LINES: usize = 100_000;

/// One job's allocation as accounting records it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAllocation {
    /// Which job or array task.
    pub job: JobRef,
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

/// The arguments for the allocations of `jobs` (all at once): the jobs'
/// own lines only (`--allocations`), not their steps'.
pub(crate) fn args(jobs: &[JobRef]) -> Vec<String> {
    let mut args = vec!["--allocations".to_string()];
    args.extend(super::sacct::args_for(FORMAT, jobs));
    args
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
        let fields: Vec<&str> = line.split('|').collect();
        let [id, start, end, alloc, energy] = fields[..] else {
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
    fn jobs_read_with_their_times_tres_and_energy() {
        // As Slurm 22.05 printed them here (the energy of the first made up:
        // this machine gathers none).
        let text = "\
3_0|1796641088|1796641150|billing=8,cpu=8,mem=1908M,node=1|5120
3_1|1796641088|Unknown|billing=12,cpu=8,mem=1908M,node=1|
3_[2-5]|Unknown|Unknown||
7|Unknown|Unknown||
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
        assert_eq!((a[1].end_s, a[1].energy_joules), (None, None));
        assert_eq!(a[1].tres.billing, Some(12.0));
        assert_eq!((a[2].start_s, a[2].tres), (None, Tres::default()));
    }

    #[test]
    fn lines_that_are_not_sacct_s_are_refused_with_the_line() {
        for bad in [
            "3|1|2|cpu=1",
            "x|1|2|cpu=1|",
            "3|soon|2|cpu=1|",
            "3|1|2|cpu=one|",
            "3|1|2|cpu=1|lots",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("sacct") && e.contains(bad.split('|').next().unwrap()),
                "{e}"
            );
        }
    }
}
