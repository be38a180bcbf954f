//! What went wrong reaching a host over ssh, told apart by ssh's own exit
//! status (255) and words, each with the fix a person can make.

use crate::exit::{ExitStatus, FAILURE, USAGE};

/// The most of ssh's or a remote command's words kept for a message.
const MAX_WORDS: usize = 800;

/// An ssh host could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host given is not one ssh can be asked for.
    #[error("ssh host `{given}` is not valid: {why} (expected what `ssh` accepts: login, user@login.example.org, or a Host alias of ~/.ssh/config)")]
    BadHost {
        /// What was given (cut short).
        given: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// No OpenSSH client here.
    #[error("cannot run ssh: {0} (install OpenSSH's client, e.g. apt-get install openssh-client)")]
    NoClient(std::io::Error),
    /// The host does not answer (name, network, firewall).
    #[error("cannot reach {host} over ssh: {words} (check the host name, the network, or ProxyJump for it in ~/.ssh/config)")]
    Unreachable {
        /// The host.
        host: String,
        /// ssh's words.
        words: String,
    },
    /// The host refused the login.
    #[error("{host} refused the ssh login: {words} (check the user name, e.g. me@{host}, and the key: IdentityFile in ~/.ssh/config or `ssh-add`)")]
    AuthRefused {
        /// The host.
        host: String,
        /// ssh's words.
        words: String,
    },
    /// The host's key is unknown or changed.
    #[error("ssh does not trust {host}'s host key: {words} (connect once with `ssh {host}` and check the key, or fix known_hosts)")]
    HostKey {
        /// The host.
        host: String,
        /// ssh's words.
        words: String,
    },
    /// ssh failed for another reason.
    #[error("ssh to {host} failed: {words}")]
    Other {
        /// The host.
        host: String,
        /// ssh's words.
        words: String,
    },
    /// drover is not installed on the host (or not where it was said to be).
    #[error("no drover on {host}: `{program}` cannot be run there ({words}); install drover on {host}, or give its path with --remote-drover (remote_drover= in Python)")]
    NoRemoteDrover {
        /// The host.
        host: String,
        /// The program tried.
        program: String,
        /// The remote shell's words.
        words: String,
    },
    /// drover on the host is another version.
    #[error("drover on {host} is {remote}, this one is drover {local}: install drover {local} on {host}, or give a matching one with --remote-drover")]
    VersionMismatch {
        /// The host.
        host: String,
        /// What the remote drover said its version is.
        remote: String,
        /// Ours.
        local: &'static str,
    },
    /// The host has no Slurm commands.
    #[error("no Slurm on {host}: sbatch is not on its PATH for ssh sessions; name the cluster's login node, or put Slurm's commands on PATH there")]
    NoSlurm {
        /// The host.
        host: String,
    },
    /// A command on the host failed.
    #[error("on {host}, {what} failed: {words}")]
    Remote {
        /// The host.
        host: String,
        /// What was being done.
        what: String,
        /// The command's words.
        words: String,
    },
}

impl ExitStatus for SshError {
    fn exit_code(&self) -> u8 {
        match self {
            SshError::BadHost { .. }
            | SshError::NoClient(_)
            | SshError::Unreachable { .. }
            | SshError::AuthRefused { .. }
            | SshError::HostKey { .. }
            | SshError::NoRemoteDrover { .. }
            | SshError::VersionMismatch { .. }
            | SshError::NoSlurm { .. } => USAGE,
            SshError::Other { .. } | SshError::Remote { .. } => FAILURE,
        }
    }
}

/// The last lines of `text` that say something, bounded: what ssh or a
/// remote command printed last is what explains its failure.
pub(crate) fn words(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(4)..].join("; ");
    let start = tail.len().saturating_sub(MAX_WORDS);
    let start = (start..=tail.len())
        .find(|i| tail.is_char_boundary(*i))
        .unwrap_or(tail.len());
    match tail[start..].trim() {
        "" => "ssh said nothing".to_string(),
        t => t.to_string(),
    }
}

/// What ssh's exit 255 meant, from its words.
pub(crate) fn classify(host: &str, stderr: &[u8]) -> SshError {
    let words = words(stderr);
    let has = |needles: &[&str]| needles.iter().any(|n| words.contains(n));
    let host = host.to_string();
    if has(&["Permission denied", "Too many authentication failures"]) {
        SshError::AuthRefused { host, words }
    } else if has(&[
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "host key is known",
    ]) {
        SshError::HostKey { host, words }
    } else if has(&[
        "Could not resolve hostname",
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset",
        "kex_exchange_identification",
    ]) {
        SshError::Unreachable { host, words }
    } else {
        SshError::Other { host, words }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_words_tell_the_failures_apart() {
        let e = classify(
            "login",
            b"ssh: Could not resolve hostname nosuch: Name or service not known\n",
        );
        assert!(matches!(e, SshError::Unreachable { .. }), "{e}");
        let e = classify(
            "login",
            b"nobody@10.77.0.250: Permission denied (publickey).\n",
        );
        assert!(matches!(e, SshError::AuthRefused { .. }), "{e}");
        assert!(
            e.to_string().contains("Permission denied (publickey)"),
            "{e}"
        );
        let e = classify("login", b"No ED25519 host key is known for login and you have requested strict checking.\r\nHost key verification failed.\r\n");
        assert!(matches!(e, SshError::HostKey { .. }), "{e}");
        let e = classify(
            "login",
            b"ssh: connect to host 10.77.0.99 port 22: Connection timed out\n",
        );
        assert!(matches!(e, SshError::Unreachable { .. }), "{e}");
        let e = classify("login", b"");
        assert!(e.to_string().contains("ssh said nothing"), "{e}");
        assert_eq!(e.exit_code(), FAILURE);
    }

    #[test]
    fn words_are_bounded_and_keep_the_last_lines() {
        let long = "é".repeat(2000) + "\nthe end\n";
        let w = words(long.as_bytes());
        assert!(w.len() <= MAX_WORDS + 2, "{}", w.len());
        assert!(w.ends_with("the end"), "{w}");
    }
}
