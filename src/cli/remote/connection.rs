//! One ssh connection to the host and what drover does over it: check the
//! host, bring a pool up there, hold it, and close it.

use std::time::Duration;

use tokio::sync::RwLock;

use drover::ssh::{Master, SshError, SshHost};

use super::words::{verdict, Verdict};
use crate::cli::error::{CliError, Context};

/// The most of a file of the pool's read from the host.
const MAX_FILE_BYTES: u32 = 64 << 10;

/// An open connection to a host with drover and Slurm on it; made again
/// (`reconnect`) when it is lost while this side is still there.
pub struct Connected {
    master: RwLock<Master>,
    host: SshHost,
    pub program: String,
    pub grace: Duration,
    connect_timeout: Duration,
    /// Every port forwarded: (local port, host, port), made again on the
    /// same local ports by a new connection.
    forwards: std::sync::Mutex<Vec<(u16, String, u16)>>,
}

impl Connected {
    pub fn new(
        master: Master,
        program: String,
        grace: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Connected {
            host: master.host().clone(),
            master: RwLock::new(master),
            program,
            grace,
            connect_timeout,
            forwards: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn host(&self) -> &SshHost {
        &self.host
    }

    /// The connection, for one use.
    pub async fn master(&self) -> tokio::sync::RwLockReadGuard<'_, Master> {
        self.master.read().await
    }

    /// Whether the connection was lost.
    pub async fn lost(&self) -> bool {
        !self.master().await.alive().await
    }

    /// Makes the connection again and its forwards, on the same local
    /// ports, so the driver's address stays true.
    pub async fn reconnect(&self) -> Result<(), SshError> {
        let fresh = Master::open(self.host.clone(), self.connect_timeout).await?;
        let forwards = self.forwards.lock().map(|f| f.clone()).unwrap_or_default();
        for (local, host, port) in &forwards {
            fresh.forward_at(*local, host, *port).await?;
        }
        let old = std::mem::replace(&mut *self.master.write().await, fresh);
        old.close().await;
        Ok(())
    }

    /// drover is on the host, at our version, and so are Slurm's commands.
    pub async fn check(&self) -> Result<(), SshError> {
        let host = self.host().to_string();
        let no_drover = |words: String| SshError::NoRemoteDrover {
            host: host.clone(),
            program: self.program.clone(),
            words,
        };
        let program = shlex::try_quote(&self.program)
            .map_err(|_| no_drover("the path has a NUL byte".into()))?;
        let line = format!(
            "{program} --version 2>&1; echo \"drover-exit=$?\"; command -v sbatch >/dev/null 2>&1 && echo slurm=yes || echo slurm=no"
        );
        let out = self.master().await.run_shell(&line).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match verdict(&stdout, concat!("drover ", env!("CARGO_PKG_VERSION"))) {
            Verdict::Ready => Ok(()),
            Verdict::NoDrover(words) => Err(no_drover(words)),
            Verdict::OtherVersion(remote) => Err(SshError::VersionMismatch {
                host,
                remote,
                local: env!("CARGO_PKG_VERSION"),
            }),
            Verdict::NoSlurm => Err(SshError::NoSlurm { host }),
        }
    }

    /// `drover cluster up` on the host with the settings `config` (a
    /// config file's text, written there first), detached (or as a
    /// scheduler job, with `up_args`), writing its scheduler file at
    /// `remote_file`; returns once the workers are up there.
    pub async fn up(
        &self,
        config: &str,
        up_args: &[String],
        (remote_config, remote_file): (&str, &str),
    ) -> Result<(), CliError> {
        // Only we may read it: it may name accounts, paths, a prologue.
        let write = "umask 077 && mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\"";
        let out = self
            .master()
            .await
            .run_input(&["sh", "-c", write, "sh", remote_config], config.as_bytes())
            .await?;
        if !out.status.success() {
            return Err(CliError::failure(format!(
                "cannot write the pool's settings to {remote_config} on {}: {}",
                self.host(),
                out.words()
            )));
        }
        let side = format!("{}=host", super::HOST_SIDE);
        let mut argv = vec![
            "env",
            &side,
            self.program.as_str(),
            "--config",
            remote_config,
        ];
        argv.extend(["cluster", "up"]);
        if !up_args.iter().any(|a| a == "--scheduler-job") {
            argv.push("--detach");
        }
        argv.extend(up_args.iter().map(String::as_str));
        argv.extend(["--scheduler-file", remote_file]);
        eprintln!("drover: bringing the pool up on {}", self.host());
        let out = self.master().await.run(&argv).await?;
        // A pool reads its settings once; a scheduler job's successor
        // reads them again, so theirs stay.
        if !up_args.iter().any(|a| a == "--scheduler-job") {
            let _ = self
                .master()
                .await
                .run(&["rm", "-f", "--", remote_config])
                .await;
        }
        match out.status.success() {
            true => Ok(()),
            false => Err(CliError::failure(format!(
                "the pool did not come up on {}: {}",
                self.host(),
                out.words()
            ))),
        }
    }

    /// Closes the pool (its workers retire, its jobs are cancelled).
    pub async fn close_pool(&self, remote_file: &str) -> Result<(), CliError> {
        let out = self
            .master()
            .await
            .run(&[&self.program, "close", "--scheduler-file", remote_file])
            .await?;
        // A scheduler job's pool kept its settings for its successors.
        if let Some(config) = remote_file.strip_suffix(".json") {
            let config = format!("{config}.toml");
            let _ = self.master().await.run(&["rm", "-f", "--", &config]).await;
        }
        match out.status.success() {
            true => Ok(()),
            false => Err(CliError::failure(format!(
                "closing the pool on {} failed: {} (its scheduler file there: {remote_file})",
                self.host(),
                out.words()
            ))),
        }
    }

    /// Whether `remote_file` exists on the host.
    pub async fn exists(&self, remote_file: &str) -> Result<bool, CliError> {
        Ok(self
            .master()
            .await
            .run(&["test", "-e", remote_file])
            .await?
            .status
            .success())
    }

    /// A small file of the pool's on the host (at most 64 KiB), through
    /// the connection: files are never copied any other way.
    pub async fn read(&self, remote_file: &str) -> Result<Vec<u8>, CliError> {
        let size = MAX_FILE_BYTES.to_string();
        let out = self
            .master()
            .await
            .run(&["head", "-c", &size, "--", remote_file])
            .await?;
        if !out.status.success() {
            return Err(CliError::failure(format!(
                "cannot read the pool's file {remote_file} on {}: {}",
                self.host(),
                out.words()
            )));
        }
        Ok(out.stdout)
    }

    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        remote_file: &str,
    ) -> Result<T, CliError> {
        let bytes = self.read(remote_file).await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {remote_file} on {}", self.host()))
    }

    /// Forwards a port here to `address` as the host reaches it (any
    /// scheme: https, http, tls, tcp); the address here.
    pub async fn forward(&self, address: &str) -> Result<String, CliError> {
        let url = reqwest::Url::parse(address)
            .map_err(|e| CliError::failure(format!("the pool's address `{address}`: {e}")))?;
        let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
            return Err(CliError::failure(format!(
                "the pool's address `{address}` names no host and port"
            )));
        };
        let local = self.master().await.forward(host, port).await?;
        if let Ok(mut f) = self.forwards.lock() {
            f.push((local, host.to_string(), port));
        }
        Ok(format!("{}://127.0.0.1:{local}", url.scheme()))
    }

    /// Interrupted while the pool came up: whatever of it is there is
    /// closed (its scheduler file may not be written yet: then there is
    /// nothing to close), and `code` is the exit.
    pub async fn interrupted(&self, remote_file: &str, code: u8) -> std::process::ExitCode {
        if let Err(e) = self.close_pool(remote_file).await {
            tracing::warn!("{:#}", e.error());
        }
        std::process::ExitCode::from(code)
    }

    pub async fn disconnect(self) {
        self.master.into_inner().close().await;
    }
}
