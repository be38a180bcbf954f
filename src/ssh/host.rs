//! The host a user names for `--ssh`: whatever their `ssh` accepts, but
//! never something `ssh` would take for an option.

use super::SshError;

/// The longest host name taken (`user@host` or an alias).
const MAX_HOST_BYTES: usize = 255;

/// A destination for `ssh`: a name, `user@host`, an alias of the user's
/// `~/.ssh/config` or an `ssh://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost(String);

impl SshHost {
    /// Checks `given`: not empty, bounded, no whitespace or control
    /// characters, and no leading `-` (which `ssh` would read as an option).
    pub fn parse(given: &str) -> Result<SshHost, SshError> {
        let bad = |why: &'static str| SshError::BadHost {
            given: given.chars().take(80).collect(),
            why,
        };
        if given.is_empty() {
            return Err(bad("it is empty"));
        }
        if given.len() > MAX_HOST_BYTES {
            return Err(bad("it is longer than 255 bytes"));
        }
        if given.starts_with('-') {
            return Err(bad("it starts with `-`, which ssh reads as an option"));
        }
        if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it has spaces or control characters"));
        }
        Ok(SshHost(given.to_string()))
    }

    /// The destination as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ssh_accepts_is_taken() {
        for ok in [
            "login",
            "me@login.hpc.example.org",
            "ssh://me@login:2222",
            "alias-1",
        ] {
            assert_eq!(SshHost::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn options_spaces_and_empty_are_refused_with_the_reason() {
        let e = SshHost::parse("-oProxyCommand=sh").unwrap_err().to_string();
        assert!(e.contains("starts with `-`"), "{e}");
        let e = SshHost::parse("login evil").unwrap_err().to_string();
        assert!(e.contains("spaces"), "{e}");
        assert!(SshHost::parse("").is_err());
        assert!(SshHost::parse(&"h".repeat(300)).is_err());
    }
}
