//! The near end of a remote pool: a hold on it (a session on the host
//! that, when it ends without a close, gives the pool `remote-grace` to be
//! attached again), its scheduler's port forwarded here, and a scheduler
//! file for this side naming that port, in a directory only we can enter.

use std::path::PathBuf;
use std::time::Duration;

use drover::protocol::SchedulerFile;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;

use super::connection::Connected;
use crate::cli::error::{CliError, Context};

/// How often a lost connection is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);
/// How long the host may take to confirm the hold.
const HOLD_CONFIRM: Duration = Duration::from_secs(30);

pub struct Bridge {
    /// The scheduler file for this side.
    pub file: SchedulerFile,
    pub path: PathBuf,
    remote_file: String,
    _dir: tempfile::TempDir,
    hold: Child,
}

impl Bridge {
    /// The near end of the pool at `remote_file`, with `hold` (taken
    /// before the pool started, `spawn_hold`) or a hold taken now.
    pub async fn open(
        conn: &Connected,
        remote_file: &str,
        hold: Option<Child>,
    ) -> Result<Bridge, CliError> {
        let hold = match hold {
            Some(h) => confirm_hold(conn, remote_file, h).await?,
            None => start_hold(conn, remote_file).await?,
        };
        let mut file: SchedulerFile = conn.read_json(remote_file).await?;
        file.address = conn.forward(&file.address).await?;
        let dir = drover::private_fs::temp_dir("drover-ssh-pool-")
            .context("making a private directory for the pool's scheduler file")?;
        if let Some(d) = file.dask.take() {
            file.dask = Some(super::dask::bring_near(conn, d, dir.path()).await?);
        }
        let path = dir.path().join("scheduler.json");
        file.write(&path)?;
        Ok(Bridge {
            file,
            path,
            remote_file: remote_file.to_string(),
            _dir: dir,
            hold,
        })
    }

    /// The environment a driver here reaches the pool by.
    pub fn env(&self) -> Vec<(String, String)> {
        crate::cli::driver::pool_env(
            &self.path,
            &self.file.address,
            &self.file.cluster_id.to_string(),
            self.file.dask.as_ref(),
        )
    }

    /// Resolves when the pool has ended (closed here or elsewhere, or
    /// after its grace). A connection lost meanwhile is made again, with
    /// its forwards on the same local ports and a new hold, retrying for
    /// up to the pool's grace (within which the pool waits for a hold).
    pub async fn ended(&mut self, conn: &Connected) {
        loop {
            let _ = self.hold.wait().await;
            if !conn.lost().await {
                return;
            }
            tracing::warn!(
                "the ssh connection to {} was lost: making it again",
                conn.host()
            );
            if !self.reconnect(conn).await {
                return;
            }
            tracing::info!("the ssh connection to {} is back", conn.host());
        }
    }

    /// The connection and the hold again; false when that failed for the
    /// whole grace, or the pool is gone.
    async fn reconnect(&mut self, conn: &Connected) -> bool {
        let deadline = tokio::time::Instant::now() + conn.grace;
        loop {
            match conn.reconnect().await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!("{e}; trying again");
                    tokio::time::sleep(RECONNECT_EVERY).await;
                }
                Err(e) => {
                    tracing::error!("{e}; giving up: the pool closes itself after its grace");
                    return false;
                }
            }
        }
        match start_hold(conn, &self.remote_file).await {
            Ok(hold) => {
                self.hold = hold;
                true
            }
            Err(e) => {
                tracing::warn!("{:#}", e.error());
                false
            }
        }
    }
}

/// `drover cluster hold` on the host, confirmed before anything else.
async fn start_hold(conn: &Connected, remote_file: &str) -> Result<Child, CliError> {
    let hold = spawn_hold(conn, remote_file, None).await?;
    confirm_hold(conn, remote_file, hold).await
}

/// `drover cluster hold` on the host, not yet confirmed; with `wait`, it
/// waits that long for the pool's scheduler file (a hold taken before the
/// pool starts).
pub async fn spawn_hold(
    conn: &Connected,
    remote_file: &str,
    wait: Option<Duration>,
) -> Result<Child, CliError> {
    let grace = format!("{}s", conn.grace.as_secs());
    let mut argv = vec![
        conn.program.as_str(),
        "cluster",
        "hold",
        "--scheduler-file",
        remote_file,
        "--grace",
        &grace,
    ];
    let wait = wait.map(|w| format!("{}s", w.as_secs()));
    if let Some(w) = &wait {
        argv.extend(["--wait-for-file", w]);
    }
    Ok(conn.master().await.session(&argv)?)
}

/// Waits for the hold's `held`: the pool is held from then on.
async fn confirm_hold(
    conn: &Connected,
    remote_file: &str,
    mut hold: Child,
) -> Result<Child, CliError> {
    let stdout = hold.stdout.take().expect("the hold's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let confirmed = tokio::time::timeout(HOLD_CONFIRM, lines.next_line()).await;
    if let Ok(Ok(Some(line))) = confirmed {
        if line == "held" {
            return Ok(hold);
        }
    }
    let _ = hold.start_kill();
    let mut said = String::new();
    if let Some(mut e) = hold.stderr.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), e.read_to_string(&mut said)).await;
    }
    Err(CliError::failure(format!(
        "cannot hold the pool on {} ({remote_file}): {}",
        conn.host(),
        said.lines().last().unwrap_or("no answer")
    )))
}
