//! The command line of the Dask worker each job of a Dask pool runs.

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::DaskTls;

/// The Dask name of the worker drover knows as `worker` (its Slurm job, with
/// `-I` per process): prefixed, so that Dask does not read `4711` or `120_4`
/// as a number.
pub fn dask_name(worker: &str) -> String {
    format!("{DASK_NAME_PREFIX}{worker}")
}

const DASK_NAME_PREFIX: &str = "slurm-";

/// How one job's Dask worker process is started.
#[derive(Debug, Clone)]
pub struct DaskWorkerCommand {
    /// The Python with `distributed`.
    pub python: PathBuf,
    /// The module it runs (`distributed.cli.dask_worker`).
    pub module: String,
    /// The Dask scheduler's address.
    pub scheduler: String,
    /// Threads per worker process.
    pub nthreads: u32,
    /// Worker processes.
    pub nworkers: u32,
    /// Memory limit per worker process, in bytes.
    pub memory_limit: u64,
    /// Name (a suffix `-I` is added per process when there are several).
    pub name: String,
    /// How long a worker waits for a vanished Dask scheduler.
    pub death_timeout: Duration,
    /// Interface to listen on.
    pub interface: Option<String>,
    /// Address to listen on when no interface is named: the one that
    /// routes to the scheduler.
    pub host: Option<std::net::IpAddr>,
    /// Run under Dask's own nanny process (else `--no-nanny`: drover's
    /// agent is the nanny).
    pub nanny: bool,
    /// Scratch directory.
    pub local_directory: Option<PathBuf>,
    /// Further `dask worker` arguments.
    pub extra: Vec<String>,
    /// The pool's Dask TLS files, when drover made them.
    pub tls: Option<DaskTls>,
    /// drover's preload file (`WORKER_PRELOAD`), where the agent wrote it.
    pub preload: Option<PathBuf>,
}

/// drover's preload for Dask workers (see the file): a worker Slurm stops
/// with SIGTERM (preemption, `scancel`) retires through Dask first, so
/// its results move to the workers that stay.
pub const WORKER_PRELOAD: &str = include_str!("worker_preload.py");

impl DaskWorkerCommand {
    /// The argv, starting with the Python.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            self.python.display().to_string(),
            "-m".into(),
            self.module.clone(),
            self.scheduler.clone(),
            "--nthreads".into(),
            self.nthreads.to_string(),
            "--memory-limit".into(),
            self.memory_limit.to_string(),
            "--name".into(),
            self.name.clone(),
            "--death-timeout".into(),
            format!("{}s", self.death_timeout.as_secs().max(1)),
        ];
        if self.nworkers > 1 {
            argv.extend(["--nworkers".into(), self.nworkers.to_string()]);
        }
        argv.push(if self.nanny { "--nanny" } else { "--no-nanny" }.into());
        match (&self.interface, self.host) {
            (Some(i), _) => argv.extend(["--interface".into(), i.clone()]),
            (None, Some(h)) => argv.extend(["--host".into(), h.to_string()]),
            (None, None) => {}
        }
        if let Some(d) = &self.local_directory {
            argv.extend(["--local-directory".into(), d.display().to_string()]);
        }
        if let Some(t) = &self.tls {
            argv.extend(["--protocol".into(), "tls".into()]);
            argv.extend(t.args());
        }
        if let Some(p) = &self.preload {
            argv.extend(["--preload".into(), p.display().to_string()]);
        }
        argv.extend(self.extra.iter().cloned());
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dask_names_never_read_as_numbers() {
        assert_eq!(dask_name("120_4"), "slurm-120_4");
        assert_eq!(dask_name("4711-1"), "slurm-4711-1");
    }

    #[test]
    fn the_worker_command_carries_every_setting() {
        let cmd = DaskWorkerCommand {
            python: "/venv/bin/python".into(),
            module: "distributed.cli.dask_worker".into(),
            scheduler: "tcp://10.77.0.1:8786".into(),
            nthreads: 2,
            nworkers: 2,
            memory_limit: 1 << 30,
            name: "4711".into(),
            death_timeout: Duration::from_secs(60),
            interface: Some("ib0".into()),
            host: Some("10.77.0.11".parse().unwrap()),
            nanny: true,
            local_directory: Some("/scratch".into()),
            extra: vec!["--resources".into(), "GPU=1".into()],
            tls: Some(DaskTls {
                cert: "/d/tls-cert.pem".into(),
                key: "/d/tls-key.pem".into(),
            }),
            preload: Some("/run/d/drover_dask_preload.py".into()),
        };
        assert_eq!(
            cmd.argv().join(" "),
            "/venv/bin/python -m distributed.cli.dask_worker tcp://10.77.0.1:8786 --nthreads 2 \
             --memory-limit 1073741824 --name 4711 --death-timeout 60s --nworkers 2 --nanny \
             --interface ib0 --local-directory /scratch --protocol tls --tls-ca-file /d/tls-cert.pem \
             --tls-cert /d/tls-cert.pem --tls-key /d/tls-key.pem \
             --preload /run/d/drover_dask_preload.py --resources GPU=1"
        );
        // drover's agent as the nanny: one worker, no Dask nanny, on the
        // address that routes to the scheduler when no interface is named.
        let mine = DaskWorkerCommand {
            nworkers: 1,
            nanny: false,
            interface: None,
            local_directory: None,
            extra: Vec::new(),
            tls: None,
            preload: None,
            ..cmd
        };
        assert_eq!(
            mine.argv().join(" "),
            "/venv/bin/python -m distributed.cli.dask_worker tcp://10.77.0.1:8786 --nthreads 2 \
             --memory-limit 1073741824 --name 4711 --death-timeout 60s --no-nanny --host 10.77.0.11"
        );
    }
}
