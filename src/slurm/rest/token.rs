//! The JWT slurmrestd authenticates drover with: from `SLURM_JWT`, or a
//! file that a site's refresher may rewrite (it is read again when it
//! changes). The token is a secret: it is never logged or shown, a file
//! others can read is refused, and its expiry is checked here, because
//! slurmrestd answers an expired token as if Slurm were down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use serde::Deserialize;

use crate::slurm::SlurmError;

/// The longest token taken: Slurm's are a few hundred bytes.
const MAX_TOKEN: usize = 64 * 1024;

/// A token and what it says of itself.
#[derive(Clone)]
pub struct Token {
    secret: String,
    /// The user it was made for (`sun`), sent as `X-SLURM-USER-NAME`.
    pub user: String,
    /// When it expires (`exp`, Unix seconds), if it says.
    pub expires: Option<u64>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("user", &self.user)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// The claims of a Slurm JWT that matter here.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    sun: Option<String>,
}

fn config_error(message: String) -> SlurmError {
    SlurmError::Config { message }
}

impl Token {
    /// Reads a token's text: three base64url parts. The signature is
    /// slurmctld's to check; the claims say whose it is and until when.
    pub fn parse(text: &str, origin: &str) -> Result<Token, SlurmError> {
        let secret = text.trim().to_string();
        let bad = |why: &str| {
            config_error(format!(
                "{origin}: {why}; expected a JWT from `scontrol token`"
            ))
        };
        if secret.len() > MAX_TOKEN {
            return Err(bad("it is longer than any Slurm token"));
        }
        if secret.is_empty() {
            return Err(bad("it is empty"));
        }
        let parts: Vec<&str> = secret.split('.').collect();
        let [_, payload, _] = parts[..] else {
            return Err(bad("it does not have three parts"));
        };
        let claims: Claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| bad("its claims are not base64url JSON"))?;
        let user = match claims.sun {
            Some(u) if !u.is_empty() && u.len() <= 256 && !u.chars().any(char::is_control) => u,
            _ => current_user().ok_or_else(|| bad("it names no user (`sun`)"))?,
        };
        Ok(Token {
            secret,
            user,
            expires: claims.exp,
        })
    }

    /// The token itself, for the request header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// An error if the token has expired by `now` (Unix seconds).
    pub fn check_fresh(&self, now: u64, origin: &str) -> Result<(), SlurmError> {
        match self.expires {
            Some(exp) if exp <= now => Err(SlurmError::Unauthorized {
                message: format!(
                    "the Slurm token from {origin} expired {} s ago; make a new one with `scontrol token` (or refresh the file)",
                    now - exp
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// The login name of this process's user.
fn current_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the token comes from.
pub enum TokenSource {
    /// `SLURM_JWT`, read once.
    Env(Token),
    /// A file, read again whenever its modification time changes.
    File {
        path: PathBuf,
        cached: Mutex<Option<(SystemTime, Token)>>,
    },
    /// No token: a Unix socket whose slurmrestd authenticates its peers.
    None,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(t) => write!(f, "SLURM_JWT ({t:?})"),
            TokenSource::File { path, .. } => write!(f, "file {}", path.display()),
            TokenSource::None => f.write_str("none"),
        }
    }
}

impl TokenSource {
    /// The token to send now (`None` for a source without one), checked
    /// to be unexpired.
    pub fn current(&self) -> Result<Option<Token>, SlurmError> {
        let token = match self {
            TokenSource::None => return Ok(None),
            TokenSource::Env(t) => t.clone(),
            TokenSource::File { path, cached } => {
                let modified = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .map_err(|e| config_error(format!("slurm-jwt-file {}: {e}", path.display())))?;
                let mut cached = cached.lock();
                match cached.as_ref() {
                    Some((at, t)) if *at == modified => t.clone(),
                    _ => {
                        let t = read_file(path)?;
                        *cached = Some((modified, t.clone()));
                        t
                    }
                }
            }
        };
        token.check_fresh(now_secs(), &self.origin())?;
        Ok(Some(token))
    }

    /// Where the token comes from, as messages name it.
    pub fn origin(&self) -> String {
        match self {
            TokenSource::Env(_) => "SLURM_JWT".into(),
            TokenSource::File { path, .. } => format!("slurm-jwt-file {}", path.display()),
            TokenSource::None => "nowhere".into(),
        }
    }
}

/// Reads a token file, refusing one that others may read or that is not
/// this user's: anyone who can read it can act as us on the cluster.
pub fn read_file(path: &Path) -> Result<Token, SlurmError> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let origin = format!("slurm-jwt-file {}", path.display());
    let file = std::fs::File::open(path).map_err(|e| config_error(format!("{origin}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| config_error(format!("{origin}: {e}")))?;
    if meta.mode() & 0o077 != 0 {
        return Err(config_error(format!(
            "{origin} may be read by other users (mode {:o}); `chmod 600` it",
            meta.mode() & 0o777
        )));
    }
    if meta.uid() != nix::unistd::getuid().as_raw() {
        return Err(config_error(format!("{origin} belongs to another user")));
    }
    let mut text = String::new();
    file.take(MAX_TOKEN as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| config_error(format!("{origin}: {e}")))?;
    Token::parse(&text, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn jwt(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.{}",
            b(r#"{"alg":"HS256","typ":"JWT"}"#),
            b(claims),
            b("sig")
        )
    }

    #[test]
    fn a_token_says_whose_it_is_and_until_when() {
        let t = Token::parse(
            &jwt(r#"{"exp":2000,"iat":1000,"sun":"alice"}"#),
            "SLURM_JWT",
        )
        .unwrap();
        assert_eq!(t.user, "alice");
        assert_eq!(t.expires, Some(2000));
        assert!(t.check_fresh(1999, "SLURM_JWT").is_ok());
        let e = t.check_fresh(2005, "SLURM_JWT").unwrap_err().to_string();
        assert!(
            e.contains("expired 5 s ago") && e.contains("scontrol token"),
            "{e}"
        );
        // Debug output never holds the secret.
        assert!(!format!("{t:?}").contains(t.secret()));
        for bad in ["", "a.b", "x.!!!.y", &"x".repeat(MAX_TOKEN + 1)] {
            assert!(Token::parse(bad, "SLURM_JWT").is_err(), "{bad:.20}");
        }
    }

    #[test]
    fn token_files_are_private_and_reread_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, jwt(r#"{"exp":99999999999,"sun":"bob"}"#)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("other users") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let source = TokenSource::File {
            path: path.clone(),
            cached: Mutex::new(None),
        };
        assert_eq!(source.current().unwrap().unwrap().user, "bob");
        std::fs::write(&path, jwt(r#"{"exp":99999999999,"sun":"carol"}"#)).unwrap();
        // A later modification time: set it explicitly, as the clock may not have moved.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(source.current().unwrap().unwrap().user, "carol");
    }
}
