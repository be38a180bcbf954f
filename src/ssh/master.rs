//! One ssh master connection to a host: opened once (the only time a
//! password or second factor is asked), then every command and forwarded
//! port of the pool rides on it through a control socket in a directory
//! only this user can enter. The master dies with this process.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::error::{classify, words};
use super::{SshError, SshHost};

/// How often the master is asked whether it is up, while it starts.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Tries at a free local port for a forward (another process may take the
/// port picked between the pick and ssh's bind).
const FORWARD_TRIES: usize = 5;

/// A remote command's outcome.
#[derive(Debug)]
pub struct RemoteOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it printed.
    pub stdout: Vec<u8>,
    /// Its errors.
    pub stderr: Vec<u8>,
}

impl RemoteOutput {
    /// Its last words (stderr, else stdout), bounded, for a message.
    pub fn words(&self) -> String {
        match self.stderr.iter().all(u8::is_ascii_whitespace) {
            true => words(&self.stdout),
            false => words(&self.stderr),
        }
    }
}

/// An open master connection.
#[derive(Debug)]
pub struct Master {
    host: SshHost,
    /// Holds the control socket and the master's log; removed on drop.
    dir: tempfile::TempDir,
    child: Child,
}

impl Master {
    /// Opens the master connection to `host` and waits (up to `limit`,
    /// which includes any prompt the user answers) until it carries
    /// commands. ssh's refusal comes back classified.
    pub async fn open(host: SshHost, limit: Duration) -> Result<Master, SshError> {
        let dir = crate::private_fs::temp_dir("drover-ssh-").map_err(SshError::NoClient)?;
        let log =
            std::fs::File::create(dir.path().join("master.log")).map_err(SshError::NoClient)?;
        let mut command = Command::new("ssh");
        command
            .arg("-M")
            .arg("-S")
            .arg(dir.path().join("cm"))
            .args([
                "-N",
                "-o",
                "ControlPersist=no",
                "-o",
                "ServerAliveInterval=15",
            ])
            .args(["-o", "ServerAliveCountMax=4", "-o", "ConnectTimeout=20"])
            .arg(host.as_str())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec. The master must not outlive this process (and
        // keep a connection open for nobody).
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        ignore_interrupts(&mut command);
        let child = command.spawn().map_err(SshError::NoClient)?;
        let mut master = Master { host, dir, child };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(_status) = master.child.try_wait().map_err(SshError::NoClient)? {
                let said = std::fs::read(master.log()).unwrap_or_default();
                return Err(classify(master.host.as_str(), &said));
            }
            if master
                .control(&["-O", "check"])
                .output()
                .await
                .is_ok_and(|o| o.status.success())
            {
                return Ok(master);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SshError::Unreachable {
                    host: master.host.to_string(),
                    words: format!("no connection within {} s", limit.as_secs()),
                });
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    /// The host.
    pub fn host(&self) -> &SshHost {
        &self.host
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("master.log")
    }

    /// `ssh -S <socket> ARGS HOST`: a client of the master.
    fn control(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-S")
            .arg(self.dir.path().join("cm"))
            .args(["-o", "ControlMaster=no"])
            .args(args)
            .arg(self.host.as_str())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        ignore_interrupts(&mut c);
        c
    }

    /// Runs `argv` on the host (each word quoted for its shell) and
    /// returns what it printed. Only ssh's own failure is an error here:
    /// the command's status is the caller's to judge.
    pub async fn run(&self, argv: &[&str]) -> Result<RemoteOutput, SshError> {
        let line = self.quote(argv)?;
        self.run_shell(&line).await
    }

    /// Runs `argv` on the host with `input` as its stdin.
    pub async fn run_input(&self, argv: &[&str], input: &[u8]) -> Result<RemoteOutput, SshError> {
        use tokio::io::AsyncWriteExt;
        let line = self.quote(argv)?;
        let mut child = self
            .control(&["-T"])
            .arg("--")
            .arg(line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SshError::NoClient)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that stops reading early says why in its output.
            let _ = stdin.write_all(input).await;
        }
        let out = child.wait_with_output().await.map_err(SshError::NoClient)?;
        self.judge(out)
    }

    fn judge(&self, out: std::process::Output) -> Result<RemoteOutput, SshError> {
        if out.status.code() == Some(255) {
            return Err(classify(self.host.as_str(), &out.stderr));
        }
        Ok(RemoteOutput {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs a line of the host's shell, as written.
    pub async fn run_shell(&self, line: &str) -> Result<RemoteOutput, SshError> {
        let out = self
            .control(&["-T"])
            .arg("--")
            .arg(line)
            .output()
            .await
            .map_err(SshError::NoClient)?;
        self.judge(out)
    }

    /// Starts `argv` on the host as a session that lasts while the
    /// returned process runs: its stdin and stdout are the remote
    /// command's. When this process (or the connection) goes, the remote
    /// command reads end-of-file.
    pub fn session(&self, argv: &[&str]) -> Result<Child, SshError> {
        let line = self.quote(argv)?;
        self.control(&["-T"])
            .arg("--")
            .arg(line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SshError::NoClient)
    }

    fn quote(&self, argv: &[&str]) -> Result<String, SshError> {
        shlex::try_join(argv.iter().copied()).map_err(|e| SshError::Remote {
            host: self.host.to_string(),
            what: format!("quoting `{}`", argv.join(" ")),
            words: e.to_string(),
        })
    }

    /// Forwards a free port of this machine's loopback to `host:port` as
    /// the remote end sees it; returns the local port.
    pub async fn forward(&self, host: &str, port: u16) -> Result<u16, SshError> {
        let mut last = None;
        for _ in 0..FORWARD_TRIES {
            let local = free_loopback_port().map_err(SshError::NoClient)?;
            match self.forward_at(local, host, port).await {
                Ok(()) => return Ok(local),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("FORWARD_TRIES is above 0"))
    }

    /// Forwards port `local` of this machine's loopback to `host:port` (a
    /// new connection's forward keeps the port the driver knows).
    pub async fn forward_at(&self, local: u16, host: &str, port: u16) -> Result<(), SshError> {
        let spec = format!("127.0.0.1:{local}:{host}:{port}");
        let out = self
            .control(&["-O", "forward", "-L", &spec])
            .output()
            .await
            .map_err(SshError::NoClient)?;
        match out.status.success() {
            true => Ok(()),
            false => Err(SshError::Remote {
                host: self.host.to_string(),
                what: format!("forwarding local port {local} to {host}:{port}"),
                words: words(&out.stderr),
            }),
        }
    }

    /// Whether the master still carries commands.
    pub async fn alive(&self) -> bool {
        self.control(&["-O", "check"])
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    }

    /// Closes the master (and with it every forward).
    pub async fn close(mut self) {
        let _ = self.control(&["-O", "exit"]).output().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A Ctrl-C at the terminal goes to the whole foreground process group:
/// drover answers it by closing the pool over this connection, so ssh must
/// not die of it first. ssh keeps SIGINT and SIGQUIT ignored when it
/// starts with them ignored; drover's own death still ends the master
/// (the parent-death signal).
fn ignore_interrupts(command: &mut Command) {
    // SAFETY: sigaction is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        command.pre_exec(|| {
            use nix::sys::signal::{signal, SigHandler, Signal};
            for s in [Signal::SIGINT, Signal::SIGQUIT] {
                signal(s, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// A port of 127.0.0.1 free right now.
fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
