//! Pure pieces of a remote pool: what the host's check printed, and where
//! a named pool's files live there.

/// What the host said about its drover.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// `drover --version`'s line.
    Version(String),
    /// drover could not be run: the shell's words.
    NoDrover(String),
}

/// Whether the host can run a pool for this drover.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    NoDrover(String),
    OtherVersion(String),
    NoSlurm,
}

/// Reads the answer to the check line (`drover --version`, its status,
/// and whether `sbatch` is on PATH).
pub fn parse_check(stdout: &str) -> Check {
    let lines: Vec<&str> = stdout.lines().collect();
    let exit = lines.iter().position(|l| l.starts_with("drover-exit="));
    let before = &lines[..exit.unwrap_or(lines.len())];
    let ran = exit.is_some_and(|i| lines[i] == "drover-exit=0");
    match (ran, before.iter().find(|l| l.starts_with("drover "))) {
        (true, Some(v)) => Check::Version(v.trim().to_string()),
        _ => Check::NoDrover(match before.join("; ").trim() {
            "" => "it printed nothing".to_string(),
            w => w.chars().take(300).collect(),
        }),
    }
}

/// The host's answer judged for drover `ours` (`drover X.Y.Z`): drover
/// first, then its version, then Slurm.
pub fn verdict(stdout: &str, ours: &str) -> Verdict {
    match parse_check(stdout) {
        Check::NoDrover(words) => Verdict::NoDrover(words),
        Check::Version(v) if v != ours => Verdict::OtherVersion(v),
        Check::Version(_) if !stdout.lines().any(|l| l == "slurm=yes") => Verdict::NoSlurm,
        Check::Version(_) => Verdict::Ready,
    }
}

/// Checks a pool's name: it names a file on the host.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "--name `{}`: expected 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.` (e.g. analysis-1)",
            name.chars().take(80).collect::<String>()
        )),
    }
}

/// Where the pool named `name` keeps its scheduler file on the host,
/// relative to the home directory ssh sessions start in.
pub fn remote_file(name: &str) -> String {
    format!(".drover/ssh/{name}.json")
}

/// Where the pool named `name` keeps the settings it was started with.
pub fn remote_config(name: &str) -> String {
    format!(".drover/ssh/{name}.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_answer_says_version_or_what_is_missing() {
        assert_eq!(
            parse_check("drover 0.1.0\ndrover-exit=0\nslurm=yes\n"),
            Check::Version("drover 0.1.0".into())
        );
        assert_eq!(
            parse_check("sh: 1: /x/drover: not found\ndrover-exit=127\nslurm=yes\n"),
            Check::NoDrover("sh: 1: /x/drover: not found".into())
        );
        assert_eq!(
            parse_check("drover-exit=126\nslurm=no\n"),
            Check::NoDrover("it printed nothing".into())
        );
    }

    #[test]
    fn the_verdict_names_what_is_missing_first() {
        let ours = "drover 0.1.0";
        assert_eq!(
            verdict("drover 0.1.0\ndrover-exit=0\nslurm=yes\n", ours),
            Verdict::Ready
        );
        assert_eq!(
            verdict("drover 0.1.0\ndrover-exit=0\nslurm=no\n", ours),
            Verdict::NoSlurm
        );
        assert_eq!(
            verdict("drover 0.0.9\ndrover-exit=0\nslurm=no\n", ours),
            Verdict::OtherVersion("drover 0.0.9".into())
        );
        assert_eq!(
            verdict(
                "sh: 1: drover: not found\ndrover-exit=127\nslurm=yes\n",
                ours
            ),
            Verdict::NoDrover("sh: 1: drover: not found".into())
        );
    }

    #[test]
    fn names_are_file_names_on_the_host() {
        assert!(check_name("analysis-1").is_ok());
        assert_eq!(remote_file("a.b"), ".drover/ssh/a.b.json");
        for bad in ["", "../x", ".hidden", "a b", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("--name") && e.contains("e.g. analysis-1"), "{e}");
        }
    }
}
