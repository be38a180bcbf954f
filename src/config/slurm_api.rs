//! How drover reaches Slurm: its command-line tools (`cli`, the default)
//! or its REST daemon (`rest`, slurmrestd) at an endpoint. Parsed once
//! here, so a bad value is refused with the accepted forms before anything
//! talks to Slurm.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValueError;

/// The forms `SlurmApi` accepts.
pub const SLURM_API_FORMS: &str = "`cli` (sbatch, squeue, scancel) or `rest` (slurmrestd)";

/// Which of Slurm's interfaces drover uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SlurmApi {
    /// The command-line tools.
    #[default]
    Cli,
    /// slurmrestd, for hosts without Slurm's commands.
    Rest,
}

impl FromStr for SlurmApi {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cli" => Ok(SlurmApi::Cli),
            "rest" => Ok(SlurmApi::Rest),
            _ => Err(ValueError::new(s, "unknown Slurm API", SLURM_API_FORMS)),
        }
    }
}

impl fmt::Display for SlurmApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlurmApi::Cli => "cli",
            SlurmApi::Rest => "rest",
        })
    }
}

impl TryFrom<String> for SlurmApi {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SlurmApi> for String {
    fn from(a: SlurmApi) -> String {
        a.to_string()
    }
}

/// The forms `RestEndpoint` accepts.
pub const REST_ENDPOINT_FORMS: &str = "`https://HOST[:PORT]`, `http://` to a loopback address \
     (`http://127.0.0.1:6820`), or a local socket `unix:/PATH`";

/// Where slurmrestd answers. Plain HTTP is taken only to a loopback
/// address: the token would cross the network readable by anyone on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RestEndpoint {
    /// `http(s)://host[:port][/prefix]`, kept without a trailing `/`.
    Url(String),
    /// A Unix socket slurmrestd listens on.
    Unix(PathBuf),
}

impl RestEndpoint {
    /// The base every request path is appended to (`http://localhost` for
    /// a socket, whose host is not used).
    pub fn base(&self) -> &str {
        match self {
            RestEndpoint::Url(u) => u,
            RestEndpoint::Unix(_) => "http://localhost",
        }
    }
}

/// Whether `host` (as a URL writes it) is this machine's loopback.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for RestEndpoint {
    type Err = ValueError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let bad = |reason: &str| ValueError::new(input, reason, REST_ENDPOINT_FORMS);
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path.trim_start_matches("//"));
            if !path.is_absolute() {
                return Err(bad("a socket path must be absolute"));
            }
            return Ok(RestEndpoint::Unix(path));
        }
        let url = reqwest::Url::parse(s).map_err(|e| bad(&format!("it is not a URL ({e})")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in the URL (the token comes from SLURM_JWT or slurm-jwt-file)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it has a query or fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(bad(
                    "plain http to another host would send the Slurm token unencrypted over the network",
                ))
            }
            other => return Err(bad(&format!("scheme `{other}` is neither http nor https"))),
        }
        Ok(RestEndpoint::Url(
            url.as_str().trim_end_matches('/').to_string(),
        ))
    }
}

impl fmt::Display for RestEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestEndpoint::Url(u) => f.write_str(u),
            RestEndpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl TryFrom<String> for RestEndpoint {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RestEndpoint> for String {
    fn from(e: RestEndpoint) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_parse_by_name() {
        assert_eq!("REST".parse::<SlurmApi>().unwrap(), SlurmApi::Rest);
        assert_eq!("cli".parse::<SlurmApi>().unwrap(), SlurmApi::Cli);
        let e = "soap".parse::<SlurmApi>().unwrap_err().to_string();
        assert!(e.contains("`cli`") && e.contains("`rest`"), "{e}");
    }

    #[test]
    fn endpoints_keep_the_token_off_the_network_in_clear() {
        let ok = |s: &str| s.parse::<RestEndpoint>().unwrap().to_string();
        assert_eq!(ok("http://127.0.0.1:6820/"), "http://127.0.0.1:6820");
        assert_eq!(ok("http://localhost:6820"), "http://localhost:6820");
        assert_eq!(ok("http://[::1]:6820"), "http://[::1]:6820");
        assert_eq!(
            ok("https://slurm.example.org/rest"),
            "https://slurm.example.org/rest"
        );
        assert_eq!(ok("unix:/run/slurmrestd.sock"), "unix:/run/slurmrestd.sock");
        for (bad, why) in [
            ("http://10.0.0.5:6820", "unencrypted"),
            ("ftp://host", "scheme `ftp`"),
            ("unix:relative.sock", "absolute"),
            ("https://user:pw@host", "credentials"),
            ("https://host/?x=1", "query"),
            ("not a url", "not a URL"),
        ] {
            let e = bad.parse::<RestEndpoint>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("unix:/PATH"), "{bad}: {e}");
        }
    }
}
