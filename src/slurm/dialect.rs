//! What drover does differently on each Slurm release it reads, in words,
//! for `drover doctor` (pure). The readers themselves live beside their
//! formats (`squeue_fields`, `json_shapes`, `rest/`); this says which of
//! their branches a site gets, so a user comparing two clusters sees why
//! drover behaves as it does on each.

use std::fmt;

use super::rest::ApiVersion;

/// A Slurm release as `major.minor` (`24.11` of `24.11.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u16,
    pub minor: u16,
}

impl Release {
    /// 23.02: the first release whose JSON comes from a data_parser plugin
    /// and whose `squeue -O exit_code` prints `CODE:SIGNAL`.
    pub const DATA_PARSER: Release = Release {
        major: 23,
        minor: 2,
    };

    /// The release of a version string (`22.05.8`, `24.11.5`,
    /// `26.05.0-0rc1`); `None` when it does not start with two numbers.
    pub fn parse(version: &str) -> Option<Release> {
        let mut parts = version.trim().split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Release { major, minor })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.major, self.minor)
    }
}

/// Through Slurm's commands: how their output is read on `release`.
pub fn commands(release: Release) -> Vec<&'static str> {
    if release < Release::DATA_PARSER {
        vec![
            "squeue -O exit_code prints a wait status (768 is exit code 3): read as one",
            "squeue --json (the fallback listing) is read in the openapi v0.0.38 form",
        ]
    } else {
        vec![
            "squeue -O exit_code prints CODE:SIGNAL: read as such",
            "squeue --json (the fallback listing) is read in the data_parser form: numbers as {set, infinite, number}, states as lists of flags",
            "accounting off shows as (null) in scontrol show config: read as off",
        ]
    }
}

/// Through slurmrestd: what the negotiated API version changes.
pub fn rest(version: ApiVersion) -> Vec<&'static str> {
    if version.data_parser() {
        vec![
            "job descriptions are sent typed (a field the version does not know is refused by its name before anything is sent)",
            "the early-warning signal goes to the batch shell alone (--signal B:USR1)",
            "numbers as {set, infinite, number} and states as lists of flags are read",
            "partitions carry no default flag: with no partition named, doctor skips the partition check and a pool's nodes are all the cluster's",
        ]
    } else {
        vec![
            "job descriptions are sent as sbatch's text options",
            "the early-warning signal goes to job steps only (this API refuses B:): a worker leaves by its own clock of the time limit",
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_read_from_version_strings() {
        assert_eq!(
            Release::parse("22.05.8"),
            Some(Release {
                major: 22,
                minor: 5
            })
        );
        assert_eq!(Release::parse("26.05.0-0rc1").unwrap().to_string(), "26.05");
        assert_eq!(Release::parse("24.11").unwrap().to_string(), "24.11");
        assert_eq!(Release::parse("unknown"), None);
        assert_eq!(Release::parse(""), None);
        assert!(Release::parse("23.02.1").unwrap() >= Release::DATA_PARSER);
        assert!(Release::parse("22.05.8").unwrap() < Release::DATA_PARSER);
    }

    #[test]
    fn each_release_says_how_its_exit_codes_are_read() {
        let old = commands(Release::parse("22.05.8").unwrap());
        assert!(old[0].contains("wait status"), "{old:?}");
        for newer in ["24.11.5", "26.05.5"] {
            let said = commands(Release::parse(newer).unwrap());
            assert!(said[0].contains("CODE:SIGNAL"), "{said:?}");
            assert!(said.iter().any(|s| s.contains("data_parser")), "{said:?}");
        }
    }

    #[test]
    fn each_api_version_says_how_jobs_are_described() {
        assert!(rest(ApiVersion::V0042)[0].contains("typed"));
        assert!(rest(ApiVersion::V0038)[0].contains("text"));
        assert!(rest(ApiVersion::V0038)
            .iter()
            .any(|s| s.contains("refuses B:")));
    }
}
