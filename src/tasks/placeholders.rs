//! `{{name}}` placeholders in a task's command: where each argument goes,
//! and how a value is put in so that it is never run as code.
//!
//! A placeholder in an argument a program only reads (a file name, a
//! number) is replaced by the value. In a shell's script (`sh -c`,
//! `bash -lc`, `env sh -e -c`, behind `nice`/`timeout`...) it becomes a
//! reference to an environment variable holding the value, so the value is
//! data to the shell. Where an argument is code drover cannot pass a
//! reference into (`python -c`, `perl -e`, awk's program), or drover cannot
//! tell what a program does with it (`ssh`, `srun`, `xargs`...), the task
//! is refused at submission with the way to write it instead.

/// What an argument is to the program that gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read as data.
    Data,
    /// A shell's script: placeholders become variable references.
    ShellScript,
    /// Code of another language: no placeholder may go there.
    OtherCode,
    /// Handed to a program that may run it as code in ways drover cannot
    /// see: no placeholder may go there.
    Unclear,
}

/// Programs that run their `-c` argument as shell code.
pub const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox", "fish", "csh", "tcsh", "yash",
];

/// Interpreters and the flags whose argument is their code.
const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["-c"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("nodejs", &["-e", "--eval", "-p", "--print"]),
    ("Rscript", &["-e"]),
    ("R", &["-e"]),
    ("php", &["-r"]),
    ("lua", &["-e"]),
    ("julia", &["-e", "--eval"]),
    ("tclsh", &[]),
    ("awk", &[]),
    ("gawk", &[]),
    ("mawk", &[]),
    ("nawk", &[]),
];

/// Programs that may run what they are given, in ways drover cannot see.
const OPAQUE: &[&str] = &[
    "ssh",
    "eval",
    "xargs",
    "su",
    "sudo",
    "doas",
    "runuser",
    "srun",
    "mpirun",
    "mpiexec",
    "parallel",
    "watch",
    "flock",
    "chroot",
    "nsenter",
    "unshare",
    "setpriv",
    "script",
    "make",
    "singularity",
    "apptainer",
    "docker",
    "podman",
    "bwrap",
    "exec",
    "sg",
    "newgrp",
];

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// An interpreter's flags, `python3.11` read as `python`.
fn interpreter(program: &str) -> Option<&'static [&'static str]> {
    let stem = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS
        .iter()
        .find(|(p, _)| *p == stem)
        .map(|(_, f)| *f)
}

/// Steps over a wrapper at `i` that runs the rest of `argv` as given
/// (`env`, `nice`, `timeout`...): the index of what it runs, or `None`
/// when `argv[i]` is no such wrapper, or `Err` when it turns a string
/// into a command (`env -S`).
fn past_wrapper(argv: &[String], i: usize) -> Result<Option<usize>, ()> {
    let takes_value: &[&str] = match base(&argv[i]) {
        "env" => &["-u", "--unset", "-C", "--chdir"],
        "nice" => &["-n", "--adjustment"],
        "timeout" => &["-s", "--signal", "-k", "--kill-after"],
        "nohup" | "setsid" | "command" | "stdbuf" | "time" | "ionice" | "chrt" => &[],
        _ => return Ok(None),
    };
    let program = base(&argv[i]);
    let mut j = i + 1;
    while let Some(a) = argv.get(j) {
        if program == "env" && (a == "-S" || a.starts_with("--split-string") || a.starts_with("-S"))
        {
            return Err(());
        }
        if a == "--" {
            j += 1;
            break;
        }
        if takes_value.contains(&a.as_str()) {
            j += 2;
        } else if a.starts_with('-') || (program == "env" && a.contains('=')) {
            j += 1;
        } else {
            break;
        }
    }
    if program == "timeout" {
        j += 1; // its duration
    }
    Ok(Some(j))
}

/// The role of every argument of `argv`.
pub fn roles(argv: &[String]) -> Vec<Role> {
    let mut roles = vec![Role::Data; argv.len()];
    let mut i = 0;
    while i < argv.len() {
        match past_wrapper(argv, i) {
            Ok(Some(j)) => i = j,
            Ok(None) => break,
            Err(()) => {
                roles[i..].fill(Role::Unclear);
                return roles;
            }
        }
    }
    let Some(first) = argv.get(i) else {
        return roles;
    };
    let program = base(first);
    if SHELLS.contains(&program) {
        shell_roles(argv, i, &mut roles);
        return roles;
    }
    if let Some(flags) = interpreter(program) {
        interpreter_roles(argv, i, program, flags, &mut roles);
        return roles;
    }
    // Another program handed a program that may run code: what follows
    // that one is unclear.
    if let Some(k) = argv[i + 1..].iter().position(|a| {
        let b = base(a);
        SHELLS.contains(&b) || interpreter(b).is_some() || OPAQUE.contains(&b)
    }) {
        let from = i + 1 + k + 1;
        for r in &mut roles[from.min(argv.len())..] {
            if *r == Role::Data {
                *r = Role::Unclear;
            }
        }
    }
    if OPAQUE.contains(&program) {
        roles[i + 1..].fill(Role::Unclear);
    }
    roles
}

/// A shell at `i`: its options, then with `-c` the script and its
/// positional parameters (data).
fn shell_roles(argv: &[String], i: usize, roles: &mut [Role]) {
    let mut has_c = false;
    let mut j = i + 1;
    while let Some(a) = argv.get(j) {
        if a == "--" || a == "-" {
            j += 1;
            break;
        }
        if ["--rcfile", "--init-file"].contains(&a.as_str()) {
            j += 2;
            continue;
        }
        if a.starts_with("--") {
            j += 1;
            continue;
        }
        let Some(flags) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) else {
            break;
        };
        has_c |= a.starts_with('-') && flags.contains('c');
        // `-o NAME` and `-O NAME` take the next argument.
        j += 1 + flags.matches(['o', 'O']).count();
    }
    if has_c {
        if let Some(r) = roles.get_mut(j) {
            *r = Role::ShellScript;
        }
    }
}

/// An interpreter at `i`: the argument after a code flag (or attached to
/// it) is its code; awk's first operand is its program.
fn interpreter_roles(argv: &[String], i: usize, program: &str, flags: &[&str], roles: &mut [Role]) {
    let awk = program.ends_with("awk");
    let mut j = i + 1;
    while let Some(a) = argv.get(j) {
        if let Some(flag) = flags.iter().find(|f| a.starts_with(**f)) {
            if a.len() > flag.len() && !flag.starts_with("--") {
                roles[j] = Role::OtherCode; // `-c'code'`
            } else if let Some(r) = roles.get_mut(j + 1) {
                *r = Role::OtherCode;
            }
            return;
        }
        if awk && !a.starts_with('-') {
            roles[j] = Role::OtherCode;
            return;
        }
        if awk && a == "-f" {
            return; // the program is a file
        }
        if !a.starts_with('-') {
            return; // a script file and its arguments: data
        }
        j += 1;
    }
}

/// The names of the `{{name}}` placeholders in `text`, in order.
pub fn names_in(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(&after[..end]);
        rest = &after[end + 2..];
    }
    out
}

/// `text` with each `{{name}}` that `value` knows replaced in one pass, so
/// a value that itself holds `{{other}}` stays as it is.
pub fn substitute(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        match value(&after[..end]) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(argv: &[&str]) -> Vec<Role> {
        roles(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }
    use Role::*;

    #[test]
    fn shell_scripts_are_found_in_every_form() {
        assert_eq!(r(&["sh", "-c", "x", "a"]), [Data, Data, ShellScript, Data]);
        // `$0` named like a shell, then the parameters: data.
        assert_eq!(r(&["sh", "-c", "x", "sh", "a"])[4], Data);
        assert_eq!(r(&["bash", "-lc", "x"]), [Data, Data, ShellScript]);
        assert_eq!(
            r(&["/bin/sh", "-e", "-c", "x"]),
            [Data, Data, Data, ShellScript]
        );
        assert_eq!(r(&["env", "A=1", "sh", "-c", "x"])[4], ShellScript);
        assert_eq!(r(&["env", "-i", "--", "bash", "-c", "x"])[5], ShellScript);
        assert_eq!(
            r(&["nice", "-n", "5", "timeout", "10", "sh", "-c", "x"])[7],
            ShellScript
        );
        assert_eq!(r(&["bash", "-o", "pipefail", "-c", "x"])[4], ShellScript);
        assert_eq!(r(&["bash", "-eo", "pipefail", "-c", "x"])[4], ShellScript);
        // A script file and its arguments are data.
        assert_eq!(r(&["bash", "run.sh", "x"]), [Data, Data, Data]);
        assert_eq!(r(&["env", "-S", "sh -c x"])[2], Unclear);
    }

    #[test]
    fn other_code_and_opaque_programs_are_told_apart_from_data() {
        assert_eq!(
            r(&["python3", "-c", "x", "a"]),
            [Data, Data, OtherCode, Data]
        );
        assert_eq!(r(&["python3.11", "script.py", "a"]), [Data, Data, Data]);
        assert_eq!(r(&["perl", "-e", "x"])[2], OtherCode);
        assert_eq!(r(&["awk", "{print}", "f"]), [Data, OtherCode, Data]);
        assert_eq!(r(&["ssh", "host", "echo x"]), [Data, Unclear, Unclear]);
        assert_eq!(r(&["srun", "bash", "-c", "x"])[3], Unclear);
        assert_eq!(r(&["mytool", "--wrap", "bash", "-c", "x"])[4], Unclear);
        assert_eq!(r(&["./simulate", "in.dat", "x"]), [Data, Data, Data]);
    }

    #[test]
    fn values_go_in_one_pass() {
        let v = |n: &str| match n {
            "a" => Some("{{b}}".to_string()),
            "b" => Some("B".to_string()),
            _ => None,
        };
        assert_eq!(substitute("x{{a}}y{{b}}{{c}}", v), "x{{b}}yB{{c}}");
        assert_eq!(names_in("{{a}} {{b.c}} {{"), ["a", "b.c"]);
    }
}
