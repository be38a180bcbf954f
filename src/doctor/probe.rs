//! The probe: a tiny job that looks at its node as a worker would and
//! calls back to the address the scheduler would listen on. `drover
//! probe` runs inside the job (`run`); `drover doctor` listens
//! (`Listener`). What the probe found goes back over the connection it
//! proves, and into its job's log, so a probe that cannot connect still
//! says why.
//!
//! Anyone on the network can connect to the listener: an answer counts
//! only with the probe's token (random, given to the job in its
//! environment), and each connection is bounded in time and size.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The environment variable that carries the probe's token.
pub const TOKEN_ENV: &str = "DROVER_PROBE_TOKEN";
/// How a probe's findings start in its log.
const LOG_MARK: &str = "drover-probe: ";
/// The most a probe may send.
const MAX_FINDINGS: usize = 64 * 1024;
/// How long the probe tries to connect, and a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the probe found on its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// The token it was given (checked by the listener, never shown).
    #[serde(default)]
    pub token: String,
    /// The node's host name.
    pub hostname: String,
    /// Its interfaces and their addresses.
    pub interfaces: Vec<(String, String)>,
    /// The interface it was told workers use, if any.
    pub interface: Option<String>,
    /// That interface's IPv4 address, if it has one there.
    pub interface_address: Option<String>,
    /// The address it called back to.
    pub target: String,
    /// Why the call back failed, if it did.
    pub connect_error: Option<String>,
    /// The node's address the call back left from.
    pub source: Option<String>,
}

impl Findings {
    /// The line the probe writes to its log.
    pub fn log_line(&self) -> String {
        let mut shown = self.clone();
        shown.token.clear();
        format!(
            "{LOG_MARK}{}",
            serde_json::to_string(&shown).unwrap_or_default()
        )
    }

    /// The probe's findings in its job's log, if it wrote them.
    pub fn from_log(log: &str) -> Option<Findings> {
        log.lines()
            .rev()
            .find_map(|l| l.strip_prefix(LOG_MARK))
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// The node's interfaces, as a list for a message.
    pub fn interface_list(&self) -> String {
        self.interfaces
            .iter()
            .map(|(n, a)| format!("{n} ({a})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The probe's side: looks at this node, calls back to `target`, sends its
/// findings there and prints them (for the log). Returns them.
pub async fn run(target: SocketAddr, interface: Option<String>, token: String) -> Findings {
    let interfaces: Vec<(String, String)> = crate::net::interfaces()
        .into_iter()
        .map(|(n, a)| (n, a.to_string()))
        .collect();
    let interface_address = interface
        .as_deref()
        .and_then(|name| crate::net::interface_ipv4(name).ok())
        .map(|a| a.to_string());
    let mut findings = Findings {
        token,
        hostname: sysinfo::System::host_name().unwrap_or_default(),
        interfaces,
        interface,
        interface_address,
        target: target.to_string(),
        ..Default::default()
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(mut stream)) => {
            findings.source = stream.local_addr().ok().map(|a| a.ip().to_string());
            let mut body = serde_json::to_vec(&findings).unwrap_or_default();
            body.push(b'\n');
            if let Err(e) = stream.write_all(&body).await {
                findings.connect_error = Some(format!("connected, then could not send: {e}"));
            }
            let _ = stream.shutdown().await;
        }
        Ok(Err(e)) => findings.connect_error = Some(e.to_string()),
        Err(_) => {
            findings.connect_error =
                Some(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
        }
    }
    println!("{}", findings.log_line());
    findings
}

/// The most callers read at once: more are dropped at accept, so a flood
/// of idle connections costs a bounded few of these.
const MAX_READING: usize = 256;

/// The doctor's side: where probes call back. Callers are read side by
/// side, so idle connections (another user's, or a probe's stuck peer)
/// never hold up the probes behind them.
pub struct Listener {
    listener: TcpListener,
    token: String,
    reading: tokio::sync::Mutex<tokio::task::JoinSet<Option<Findings>>>,
}

impl Listener {
    /// Listens on `ip` (any free port) for probes carrying `token`.
    pub async fn bind(ip: IpAddr, token: String) -> std::io::Result<Listener> {
        Ok(Listener {
            listener: TcpListener::bind((ip, 0)).await?,
            token,
            reading: Default::default(),
        })
    }

    /// Where probes call back.
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next probe that calls back with the token; connections without
    /// it (or too slow, or too large) are dropped.
    pub async fn next(&self) -> Findings {
        let mut reading = self.reading.lock().await;
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    if reading.len() < MAX_READING {
                        reading.spawn(async move {
                            tokio::time::timeout(CONNECT_TIMEOUT, read(stream)).await.ok().flatten()
                        });
                    }
                }
                // Matched in the body: a pattern that failed here would
                // leave this branch off until another connection came.
                Some(done) = reading.join_next(), if !reading.is_empty() => {
                    if let Ok(Some(f)) = done {
                        if self.is_token(&f.token) {
                            return f;
                        }
                    }
                }
            }
        }
    }

    fn is_token(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(presented.as_bytes().ct_eq(self.token.as_bytes()))
    }
}

async fn read(stream: TcpStream) -> Option<Findings> {
    let mut body = Vec::new();
    stream
        .take(MAX_FINDINGS as u64)
        .read_to_end(&mut body)
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_probe_that_calls_back_is_heard_and_a_stranger_is_not() {
        let listener = Listener::bind("127.0.0.1".parse().unwrap(), "secret".into())
            .await
            .unwrap();
        let addr = listener.addr().unwrap();
        // A stranger first: wrong token, then garbage.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(br#"{"token":"guess","hostname":"x","interfaces":[],"target":""}"#)
            .await
            .unwrap();
        drop(s);
        let mut g = TcpStream::connect(addr).await.unwrap();
        g.write_all(b"not json").await.unwrap();
        drop(g);
        let probe = tokio::spawn(run(addr, Some("lo".into()), "secret".into()));
        let heard = listener.next().await;
        let sent = probe.await.unwrap();
        assert_eq!(heard.token, "secret");
        assert_eq!(heard.interface_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(heard.source.as_deref(), Some("127.0.0.1"));
        assert!(sent.connect_error.is_none());
        // The log line keeps the findings, not the token.
        let line = sent.log_line();
        assert!(!line.contains("secret"));
        let back = Findings::from_log(&format!("noise\n{line}\n")).unwrap();
        assert_eq!(back.hostname, sent.hostname);
    }

    #[tokio::test]
    async fn idle_connections_do_not_hold_up_a_probe() {
        let listener = Listener::bind("127.0.0.1".parse().unwrap(), "secret".into())
            .await
            .unwrap();
        let addr = listener.addr().unwrap();
        // Connections that send nothing: each would hold a one-at-a-time
        // reader for the whole timeout.
        let mut idle = Vec::new();
        for _ in 0..8 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let probe = tokio::spawn(run(addr, Some("lo".into()), "secret".into()));
        let heard = tokio::time::timeout(CONNECT_TIMEOUT, listener.next())
            .await
            .expect("the probe was heard while idle connections were open");
        assert_eq!(heard.token, "secret");
        probe.await.unwrap();
        drop(idle);
    }

    #[tokio::test]
    async fn a_probe_that_cannot_connect_says_why_in_its_log() {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let f = run(closed, Some("nosuch9".into()), "t".into()).await;
        assert!(f.connect_error.is_some());
        assert!(f.interface_address.is_none());
        assert!(Findings::from_log(&f.log_line())
            .unwrap()
            .connect_error
            .is_some());
    }
}
