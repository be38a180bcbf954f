//! Pure pieces of a remote pool: what the host's check printed, which of
//! the user's flags go to the host, and where a named pool's scheduler
//! file lives there.

/// What the host said about its drover.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// `drover --version`'s line.
    Version(String),
    /// drover could not be run: the shell's words.
    NoDrover(String),
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

/// Flags that mean something only on this side, with whether they take a value.
const LOCAL_FLAGS: &[(&str, bool)] = &[
    ("--ssh", true),
    ("--remote-drover", true),
    ("--name", true),
    ("--detach", false),
];

/// The pool's own flags as given after `subcommand` (`run`, or `up` of
/// `cluster up`) up to `--`, without the flags that mean something only
/// here: they are what `drover cluster up` on the host is given.
pub fn pool_args(argv: &[String], subcommand: &str) -> Vec<String> {
    let Some(start) = argv.iter().skip(1).position(|a| a == subcommand) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = argv[start + 2..].iter().take_while(|a| *a != "--");
    while let Some(a) = rest.next() {
        let local = LOCAL_FLAGS
            .iter()
            .find(|(f, _)| a == f || a.strip_prefix(f).is_some_and(|v| v.starts_with('=')));
        match local {
            Some((f, true)) if a == f => {
                rest.next();
            }
            Some(_) => {}
            None => out.push(a.to_string()),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_pools_flags_go_to_the_host_without_the_local_ones() {
        let argv = strings(&[
            "drover",
            "run",
            "--ssh",
            "login",
            "--workers",
            "2",
            "--remote-drover=/x/drover",
            "--name",
            "p1",
            "--interface",
            "ib0",
            "--",
            "python",
            "--ssh",
            "x",
        ]);
        assert_eq!(
            pool_args(&argv, "run"),
            strings(&["--workers", "2", "--interface", "ib0"])
        );
        let argv = strings(&[
            "drover",
            "cluster",
            "up",
            "--detach",
            "--ssh=login",
            "--cores",
            "2",
        ]);
        assert_eq!(pool_args(&argv, "up"), strings(&["--cores", "2"]));
        assert!(pool_args(&strings(&["drover", "status"]), "run").is_empty());
        // A flag that only starts like a local one is the pool's.
        let argv = strings(&["drover", "run", "--sshx", "1", "--"]);
        assert_eq!(pool_args(&argv, "run"), strings(&["--sshx", "1"]));
    }

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
    fn names_are_file_names_on_the_host() {
        assert!(check_name("analysis-1").is_ok());
        assert_eq!(remote_file("a.b"), ".drover/ssh/a.b.json");
        for bad in ["", "../x", ".hidden", "a b", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("--name") && e.contains("e.g. analysis-1"), "{e}");
        }
    }
}
