//! A pool on an ssh host (a cluster's login node) driven from here: `drover
//! run --ssh HOST`, `drover cluster up --ssh HOST` and `drover cluster
//! attach --ssh HOST --name NAME`. The pool runs on the host as a detached
//! `drover cluster up` (or a scheduler job); the driver runs here and
//! reaches the pool's scheduler through a port forwarded over one ssh
//! connection. TLS stays pinned end to end: the scheduler file's
//! certificate fingerprint travels with it, and the client checks the key,
//! not the address. A hold (`hold.rs`) keeps the pool while a driver is
//! attached, and `remote-grace` after one vanished.

mod bridge;
mod connection;
mod dask;
mod hold;
mod sent;
mod words;

use std::process::ExitCode;
use std::time::Duration;

use drover::config::PoolOptions;
use drover::ssh::{Master, SshHost};

pub use hold::{hold, HoldArgs};

use super::driver::Signals;
use super::error::{CliError, CliResult, Context};
use super::pool::PoolSettings;
use bridge::Bridge;
use connection::Connected;

/// Opening the connection may take this long by default (a second factor
/// typed included): `ssh-connect-timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Beyond the workers' wait: a scheduler job's queueing and start.
const START_SLACK: Duration = Duration::from_secs(660);
/// A remote pool whose driver vanished is kept this long by default for
/// one to attach again: `remote-grace`.
const REMOTE_GRACE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Run the pool on HOST, the cluster's login node (anything `ssh` accepts;
    /// ~/.ssh/config applies), driven from here through one ssh connection.
    #[arg(long, env = "DROVER_SSH", value_name = "HOST", help_heading = "Remote")]
    pub ssh: Option<String>,
    /// With --ssh: drover's path on HOST (default: `drover` on its PATH).
    #[arg(
        long,
        env = "DROVER_REMOTE_DROVER",
        value_name = "PATH",
        help_heading = "Remote"
    )]
    pub remote_drover: Option<String>,
    /// With --ssh: the pool's name on HOST, to attach to it again (default: pool-<time>).
    #[arg(long, value_name = "NAME", help_heading = "Remote")]
    pub name: Option<String>,
}

/// Set in the environment of the drover commands run on the host, where
/// a `[site] ssh` of the user's config (a home shared with the laptop)
/// must not send the pool on to the host again.
const HOST_SIDE: &str = "DROVER_SSH_SIDE";

impl RemoteArgs {
    /// These, with what is not given taken from the config files' `[site]`
    /// (never on the host's side).
    pub fn with_site(mut self, config: Option<std::path::PathBuf>) -> Result<RemoteArgs, CliError> {
        if std::env::var_os(HOST_SIDE).is_some() {
            return Ok(self);
        }
        let site = drover::config::ConfigSources::discover(config).site()?;
        self.ssh = self.ssh.or(site.ssh);
        self.remote_drover = self.remote_drover.or(site.remote_drover);
        Ok(self)
    }
}

/// A pool to start on the host: its settings, every layer applied here,
/// and `cluster up`'s own flags for the host.
pub struct Sent<'a> {
    pub settings: &'a PoolSettings,
    pub up_args: Vec<String>,
}

/// A pool to reach on an ssh host, checked before anything is done.
pub struct Remote {
    host: SshHost,
    /// The settings sent to the host (none to attach to a pool).
    config: Option<String>,
    /// `cluster up`'s own flags for the host (`--scheduler-job`...).
    up_args: Vec<String>,
    program: String,
    name: String,
    connect_timeout: Duration,
    grace: Duration,
    /// How long a hold taken before its pool waits for the pool to start.
    wait_for_file: Duration,
}

impl Remote {
    /// Checks everything that can be checked here (the host, the name, the
    /// pool's settings), so bad input is refused before any connection is
    /// made and nothing is submitted.
    pub fn new(
        args: &RemoteArgs,
        pool: &PoolOptions,
        sent: Option<Sent>,
    ) -> Result<Remote, CliError> {
        let host = args.ssh.as_deref().unwrap_or_default();
        let host = SshHost::parse(host).context("--ssh")?;
        let name = match &args.name {
            Some(n) => n.clone(),
            None => format!("pool-{}", drover::protocol::unix_ms()),
        };
        words::check_name(&name).map_err(CliError::usage)?;
        let (config, up_args) = match sent {
            None => (None, Vec::new()),
            Some(sent) => {
                sent.settings.job.clone().build()?;
                if sent.settings.job.scheduler_file.is_some() {
                    return Err(CliError::usage(
                        "--scheduler-file with --ssh: the pool's scheduler file is on the host, found by --name",
                    ));
                }
                (Some(sent::config_text(sent.settings)?), sent.up_args)
            }
        };
        Ok(Remote {
            host,
            config,
            up_args,
            program: args
                .remote_drover
                .clone()
                .unwrap_or_else(|| "drover".into()),
            name,
            connect_timeout: pool
                .ssh_connect_timeout
                .map(|t| t.duration())
                .unwrap_or(CONNECT_TIMEOUT),
            wait_for_file: pool
                .wait_timeout
                .map(|t| t.duration())
                .unwrap_or(Duration::from_secs(300))
                + START_SLACK,
            grace: pool
                .remote_grace
                .map(|t| t.duration())
                .unwrap_or(REMOTE_GRACE),
        })
    }

    async fn connect(&self) -> Result<Connected, CliError> {
        let master = Master::open(self.host.clone(), self.connect_timeout).await?;
        let conn = Connected::new(
            master,
            self.program.clone(),
            self.grace,
            self.connect_timeout,
        );
        if let Err(e) = conn.check().await {
            conn.disconnect().await;
            return Err(e.into());
        }
        Ok(conn)
    }

    fn remote_file(&self) -> String {
        words::remote_file(&self.name)
    }

    /// Brings the pool up on the host with the settings sent.
    async fn up(&self, conn: &Connected) -> Result<(), CliError> {
        let config = self.config.as_deref().unwrap_or_default();
        let paths = (words::remote_config(&self.name), self.remote_file());
        conn.up(config, &self.up_args, (&paths.0, &paths.1)).await
    }

    /// Brings the pool up on the host, its hold taken first (so a driver
    /// gone while it comes up still has it closed after the grace); the
    /// hold, or the exit code of a signal that interrupted it.
    async fn start_pool(
        &self,
        conn: &Connected,
        signals: &mut Signals,
    ) -> Result<Result<tokio::process::Child, ExitCode>, CliError> {
        let file = self.remote_file();
        if conn.exists(&file).await? {
            return Err(CliError::usage(format!(
                "a pool named {name} is on {host} already (its scheduler file ~/{file} is there): attach to it with `drover cluster attach --ssh {host} --name {name}`, or give another --name (if that pool is gone, remove the file)",
                name = self.name,
                host = self.host
            )));
        }
        let hold = bridge::spawn_hold(conn, &file, Some(self.wait_for_file)).await?;
        tokio::select! {
            r = self.up(conn) => r.map(|()| Ok(hold)),
            _ = signals.term.recv() => Ok(Err(conn.interrupted(&file, 143).await)),
            _ = signals.int.recv() => Ok(Err(conn.interrupted(&file, 130).await)),
        }
    }

    /// `drover run --ssh`: the pool up there, `command` here, the pool
    /// closed whatever the command's end.
    pub async fn run(&self, command: &[String], signals: &mut Signals) -> CliResult {
        let conn = self.connect().await?;
        let result = self.run_connected(&conn, command, signals).await;
        conn.disconnect().await;
        result
    }

    async fn run_connected(
        &self,
        conn: &Connected,
        command: &[String],
        signals: &mut Signals,
    ) -> CliResult {
        let file = self.remote_file();
        let hold = match self.start_pool(conn, signals).await? {
            Ok(hold) => hold,
            Err(code) => return Ok(code),
        };
        let outcome = async {
            let mut bridge = Bridge::open(conn, &file, Some(hold)).await?;
            let env = bridge.env();
            let driver = super::driver::run(command, &env, signals);
            tokio::pin!(driver);
            // The connection is kept (made again if lost) while the driver
            // runs; a pool that ends under it leaves the driver to finish.
            let status = tokio::select! {
                s = &mut driver => s,
                () = bridge.ended(conn) => driver.await,
            };
            status.with_context(|| format!("running `{}`", command[0]))
        }
        .await;
        let closed = conn.close_pool(&file).await;
        let status = outcome?;
        closed?;
        Ok(super::driver::exit_code(status))
    }

    /// `drover cluster up --ssh` (`attach` false) and `drover cluster attach
    /// --ssh`: the pool reached from here until Ctrl-C or SIGTERM (which
    /// close it) or its close from elsewhere.
    pub async fn foreground(&self) -> CliResult {
        let mut signals = Signals::listen()?;
        let conn = self.connect().await?;
        let result = self
            .foreground_connected(&conn, self.config.is_some(), &mut signals)
            .await;
        conn.disconnect().await;
        result
    }

    async fn foreground_connected(
        &self,
        conn: &Connected,
        start: bool,
        signals: &mut Signals,
    ) -> CliResult {
        let file = self.remote_file();
        let mut hold = None;
        if start {
            match self.start_pool(conn, signals).await? {
                Ok(h) => hold = Some(h),
                Err(code) => return Ok(code),
            }
        }
        if !start && !conn.exists(&file).await? {
            return Err(CliError::usage(format!(
                "no pool named {} on {}: its scheduler file ~/{file} is not there (it was closed, or no driver attached within its remote-grace)",
                self.name, self.host
            )));
        }
        let mut bridge = Bridge::open(conn, &file, hold).await?;
        println!(
            "cluster {} on {} (name {})",
            bridge.file.cluster_id, self.host, self.name
        );
        for (k, v) in bridge.env() {
            println!("export {k}={v}");
        }
        println!(
            "ready: drover status --scheduler-file {} (attach again: drover cluster attach --ssh {} --name {})",
            bridge.path.display(),
            self.host,
            self.name
        );
        let why = tokio::select! {
            _ = signals.term.recv() => "SIGTERM",
            _ = signals.int.recv() => "SIGINT",
            _ = bridge.ended(conn) => {
                println!("the pool on {} has ended", self.host);
                return Ok(ExitCode::SUCCESS);
            }
        };
        tracing::info!("closing the pool on {} ({why})", self.host);
        conn.close_pool(&file).await?;
        println!("closed cluster {}", bridge.file.cluster_id);
        Ok(ExitCode::SUCCESS)
    }
}
