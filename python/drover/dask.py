"""``drover.dask.SLURMCluster``: a drop-in for dask-jobqueue's
``SLURMCluster`` (0.9). Change the import and nothing else::

    from drover.dask import SLURMCluster   # was: from dask_jobqueue import SLURMCluster

Underneath is drover's own Dask pool: a Dask scheduler in a process of its
own, every job run by drover's agent (one interpreter per Dask worker,
restarted in its job if it dies), workers that leave before their
walltime and are replaced early, retirement through Dask, and no job left
behind when the driver exits, however it exits.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import math
import sys
import weakref
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy.cluster import Cluster
from distributed.exceptions import WorkerStartTimeoutError
from distributed.security import Security
from distributed.utils import Log, Logs

from . import _drover, _jobqueue, _native
from ._binary import binary
from ._errors import WorkersTimeout
from ._records import Record
from ._report import Report

__all__ = ["SLURMCluster", "SLURMJob", "WorkerStartTimeout"]

# A maximum of `math.inf` workers, as drover counts them.
UNBOUNDED = 100_000

_live: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_clusters() -> None:
    """An interpreter that exits without ``close()`` leaves no job behind.
    Closed through drover directly: Dask's event loop may be gone by now."""
    for cluster in list(_live):
        handle = cluster._drover
        if handle is not None:
            try:
                handle.close()
            except Exception as e:  # noqa: BLE001 - exiting: close the others still
                logging.getLogger("drover").warning("closing %r at exit failed: %s", cluster, e)


class WorkerStartTimeout(WorkerStartTimeoutError, WorkersTimeout):
    """Dask's ``WorkerStartTimeoutError``, saying where the jobs are."""

    def __init__(self, message: str, available: int, expected: int, timeout: Any):
        WorkerStartTimeoutError.__init__(self, available, expected, timeout)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SLURMJob:
    """What one worker job is, as dask-jobqueue's ``SLURMCluster.job_cls``:
    built from the same arguments; ``job_script()`` renders it without a
    cluster (no scheduler is named yet)."""

    def __init__(self, scheduler: str | None = None, name: str | None = None, **kwargs: Any):
        given = dict(kwargs, name=name)
        self._resolved = _jobqueue.resolve(given, {})
        self._resolved.job.setdefault("drover_bin", binary())
        self.job_name = self._resolved.job_name

    def job_script(self) -> str:
        return _jobqueue.preview(self._resolved.job)

    @property
    def job_header(self) -> str:
        return _header(self.job_script())


def _header(script: str) -> str:
    return "\n".join(line for line in script.splitlines() if line.startswith("#SBATCH"))


class _Adaptive:
    """What ``adapt()`` returns: ``stop()`` ends adapting (the pool keeps
    its size)."""

    def __init__(self, cluster: SLURMCluster):
        self._cluster = cluster
        self.periodic_callback = True

    def stop(self) -> None:
        self.periodic_callback = None
        if self._cluster._drover is not None:
            self._cluster._drover.stop_adapt()


class SLURMCluster(Cluster):
    """Dask workers on Slurm, one job each (or ``processes`` per job), with
    dask-jobqueue's arguments, defaults and ``jobqueue.slurm`` configuration.
    drover's own settings (``walltime_margin``, ``gres``, ``poll_interval``...)
    are accepted as further keywords."""

    job_cls = SLURMJob

    def __init__(
        self,
        n_workers: int = 0,
        job_cls: Any = None,
        loop: Any = None,
        security: Any = None,
        shared_temp_directory: str | None = None,
        silence_logs: Any = "error",
        name: str | None = None,
        asynchronous: bool = False,
        dashboard_address: Any = None,
        host: Any = None,
        scheduler_options: dict | None = None,
        scheduler_cls: Any = None,
        interface: str | None = None,
        protocol: str | None = None,
        config_name: str | None = None,
        groups: Any = None,
        ssh: str | None = None,
        remote_drover: str | None = None,
        **job_kwargs: Any,
    ):
        if dashboard_address is not None or host is not None:
            which = "dashboard_address" if dashboard_address is not None else "host"
            raise ValueError(
                f"pass {which!r} through scheduler_options: "
                f"SLURMCluster(..., scheduler_options={{{which!r}: ...}})"
            )
        _check_scheduler_cls(scheduler_cls, job_cls)
        known, drover_settings = _split_job_kwargs(job_kwargs)
        given = dict(
            known,
            name=name,
            interface=interface,
            protocol=protocol,
            security=security,
            config_name=config_name,
            scheduler_options=scheduler_options,
            shared_temp_directory=shared_temp_directory,
        )
        resolved = _jobqueue.resolve(given, drover_settings)
        if ssh is None:
            # DROVER_SSH, or `[site] ssh` in drover's config files.
            site_ssh, site_drover = _drover.remote_site()
            if site_ssh is not None:
                ssh = site_ssh
                if remote_drover is None:
                    remote_drover = site_drover
        if ssh is not None:
            # The pool runs on the login node `ssh` names, its drover its own.
            if groups is not None:
                raise ValueError("groups= with ssh=: a pool with groups cannot run over ssh yet")
            if scheduler_options:
                raise ValueError(
                    "scheduler_options= with ssh=: the Dask scheduler's options cannot be sent over ssh yet"
                )
            _native._text("ssh", ssh)
        else:
            if remote_drover is not None:
                raise ValueError("remote_drover= is for a pool over ssh=: give ssh= too")
            resolved.job.setdefault("drover_bin", binary())
        self._ssh = (ssh, remote_drover)
        # Every value checked as the pool will, before anything starts.
        self._preview = _jobqueue.preview(resolved.job)
        self._resolved = resolved
        # Groups of Dask workers: drover's job settings over the others for
        # each; their GPUs and `worker_resources` become Dask resources.
        self._groups = _native._groups(groups)
        # Slurm is asked at the start whether it takes the jobs only when
        # some are wanted now: a cluster made to look at its job script
        # starts whatever its queue (`job_script()`, `job_header`).
        self._check_jobs = bool(n_workers)
        self._drover: Any = None
        self._pending_jobs: int | None = None
        self.security = resolved.security or Security()
        self.silence_logs = silence_logs
        super().__init__(asynchronous=asynchronous, loop=loop, name=resolved.name)
        if not self.asynchronous:
            self._loop_runner.start()
            self.sync(self._start)
        if n_workers:
            self.scale(n_workers)

    # -- life -----------------------------------------------------------------

    async def _start(self) -> None:
        if self.status != Status.created:
            return
        self.status = Status.starting
        r = self._resolved
        loop = asyncio.get_running_loop()
        try:
            ssh, remote_drover = self._ssh
            if ssh is not None:
                self._drover = await loop.run_in_executor(
                    None, lambda: _native._remote(ssh, remote_drover, None, r.job, r.pool)
                )
            else:
                self._drover = await loop.run_in_executor(
                    None,
                    lambda: _drover.Cluster(
                        r.job, r.pool, r.dask_scheduler, False, self._groups, self._check_jobs
                    ),
                )
        except BaseException:
            self.status = Status.failed
            raise
        _live.add(self)
        dask = self._drover.dask
        if dask.get("tls") and r.security is None:
            # drover secured the Dask scheduler with the cluster's own
            # certificate: Client(cluster) connects through it unchanged.
            self.security = Security(
                tls_ca_file=dask["tls"]["cert"],
                tls_client_cert=dask["tls"]["cert"],
                tls_client_key=dask["tls"]["key"],
                require_encryption=True,
            )
        address = dask["address"]
        self.scheduler_comm = rpc(
            address, connection_args=self.security.get_connection_args("client")
        )
        await super()._start()
        if self._pending_jobs is not None:
            self._drover.scale_jobs(self._pending_jobs)

    def __await__(self):
        async def started():
            if self.status == Status.created:
                await self._start()
            return self

        return started().__await__()

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        _live.discard(self)
        await super()._close()
        if self._drover is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._drover.close)
            # The pool's last word: what it cost ("4 workers, 0.9 core-h ...").
            print(f"drover: {self.report().summary}", file=sys.stderr)
        for handle in self._resolved.tls_files:
            handle.close()

    # -- size -----------------------------------------------------------------

    def scale(
        self,
        n: int | None = None,
        jobs: int = 0,
        memory: Any = None,
        cores: Any = None,
        *,
        group: str | None = None,
    ):
        """Asks for ``n`` workers, or ``jobs`` jobs, or enough jobs for
        ``memory`` or ``cores``: the most any of them needs. Stops adapting.
        With ``groups``, ``group`` names the group (``n`` workers of it)."""
        if self._groups is not None or group is not None:
            names = [name for name, _ in self._groups or []]
            if group not in names:
                raise ValueError(
                    f"group: accepted: one of this cluster's groups {names}, not {group!r}"
                )
            if self._drover is None:
                raise RuntimeError("the cluster has not started: `await` it first")
            self._drover.scale_group(group, _native._count("n", n or 0))
            return
        wanted = _jobqueue.jobs_for(self._resolved, n, jobs, memory, cores)
        if self._drover is None:
            self._pending_jobs = wanted
        else:
            self._drover.scale_jobs(wanted)

    def adapt(
        self,
        *args: Any,
        minimum: int = 0,
        maximum: float = math.inf,
        minimum_jobs: int | None = None,
        maximum_jobs: int | None = None,
        minimum_memory: Any = None,
        maximum_memory: Any = None,
        interval: Any = "1s",
        wait_count: int = 3,
        target_duration: Any = "5s",
        **kwargs: Any,
    ) -> _Adaptive:
        """Lets Dask's own adaptive target size the pool, between
        ``minimum`` and ``maximum`` workers (or jobs, or memory); a worker
        is retired once Dask has found it idle for ``interval`` ×
        ``wait_count``. drover keeps the loop, so it goes on without this
        process's event loop and stops at ``close()``."""
        from dask.utils import parse_timedelta

        if args or kwargs:
            bad = next(iter(kwargs), "positional arguments")
            raise TypeError(f"adapt() got an unexpected keyword argument {bad!r}")
        p = self._resolved.processes
        low = minimum_jobs * p if minimum_jobs is not None else minimum
        high = maximum_jobs * p if maximum_jobs is not None else maximum
        per_worker = self._resolved.memory / p
        if minimum_memory is not None:
            low = max(low, math.ceil(_jobqueue._memory(minimum_memory) / per_worker))
        if maximum_memory is not None:
            high = min(high, math.floor(_jobqueue._memory(maximum_memory) / per_worker))
        high = UNBOUNDED if high == math.inf else int(high)
        idle = parse_timedelta(interval) * wait_count
        if self._drover is None:
            raise RuntimeError("the cluster has not started: `await` it first")
        self._drover.adapt(int(low), max(int(low), high), idle)
        self._adaptive = _Adaptive(self)
        return self._adaptive

    async def _started(self) -> None:
        if self.status == Status.created:
            await self._start()

    # -- waiting and looking ----------------------------------------------------

    def wait_for_workers(self, n_workers: int, timeout: Any = None) -> None:
        """Waits until ``n_workers`` Dask workers are up; fails early with
        the job's state, exit code and log when a job fails first."""
        if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
            raise ValueError(f"`n_workers` must be a positive integer. Instead got {n_workers}.")
        return self.sync(self._wait_for_workers, n_workers, timeout=timeout)

    async def _wait_for_workers(self, n_workers: int = 0, timeout: Any = None) -> None:
        from dask.utils import parse_timedelta

        await self._started()
        seconds = parse_timedelta(timeout) if timeout is not None else None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._drover.wait_for_workers, n_workers, seconds)
        except WorkersTimeout as e:
            seen = len(self.scheduler_info.get("workers", {}))
            raise WorkerStartTimeout(str(e), seen, n_workers, timeout) from None

    async def _get_logs(self, cluster=True, scheduler=True, workers=True) -> Logs:
        logs = await super()._get_logs(cluster=cluster, scheduler=scheduler, workers=workers)
        if cluster and self._drover is not None:
            for job in self._drover.status()["jobs"]:
                logs[f"slurm-{job['job']}"] = Log(self._drover.logs(str(job["job"])))
        return logs

    def status_report(self) -> Record:
        """drover's view: every job with its Slurm state, pending reason,
        node, exit code, workers and log."""
        return Record(self._drover.status())

    def report(self) -> Report:
        """What the pool cost and used so far (after ``close()``: in all):
        Slurm's allocation of its jobs against its Dask workers' busy time
        (the compute time of their tasks, as Dask's task stream records
        it), idle fraction, billing units, energy; a table in notebooks."""
        if self._drover is None:
            raise RuntimeError("the cluster has not started")
        return Report._from(self._drover.report())

    def logs(self, worker: str) -> str:
        """The logs of the job that runs ``worker`` (a Dask worker name, or
        a Slurm job id)."""
        return self._drover.logs(str(worker))

    def job_script(self) -> str:
        """The script each worker job is submitted with."""
        return self._drover.job_script if self._drover is not None else self._preview

    def drover_dashboard_url(self) -> str:
        """A URL that logs one browser in to drover's status page of the pool
        (its Slurm jobs, pending reasons, job logs), once, within 5 minutes.
        Dask's own dashboard is ``dashboard_link``."""
        if self._drover is None:
            raise RuntimeError("the cluster has not started")
        return self._drover.dashboard_url()

    @property
    def job_header(self) -> str:
        return _header(self.job_script())

    @property
    def job_name(self) -> str:
        """The Slurm job name asked for (drover adds the cluster's id to it)."""
        return self._resolved.job_name

    @property
    def workers(self) -> dict:
        """The pool's jobs by Slurm job, each with its state and workers."""
        if self._drover is None:
            return {}
        return {str(j["job"]): Record(j) for j in self._drover.status()["jobs"]}

    @property
    def requested(self) -> set:
        return set(self.workers)

    def __repr__(self) -> str:
        return super().__repr__().replace(type(self).__name__, "drover.dask.SLURMCluster", 1)


def _check_scheduler_cls(scheduler_cls: Any, job_cls: Any) -> None:
    if scheduler_cls is not None:
        from distributed import Scheduler

        if scheduler_cls is not Scheduler:
            raise ValueError(
                "drover runs Dask's own scheduler (`dask scheduler`) in a process of its own; "
                "scheduler_cls cannot be changed"
            )
    if job_cls is not None and job_cls is not SLURMJob:
        raise ValueError("drover runs every job with its own agent; job_cls cannot be changed")


# dask-jobqueue's job arguments (`Job` and `SLURMJob`); every other keyword
# must be one of drover's settings.
_JOB_ARGUMENTS = frozenset(
    (
        "cores",
        "memory",
        "processes",
        "nanny",
        "death_timeout",
        "local_directory",
        "extra",
        "worker_command",
        "worker_extra_args",
        "job_extra",
        "job_extra_directives",
        "env_extra",
        "job_script_prologue",
        "job_script_epilogue",
        "header_skip",
        "job_directives_skip",
        "log_directory",
        "shebang",
        "python",
        "job_name",
        "queue",
        "project",
        "account",
        "walltime",
        "job_cpu",
        "job_mem",
    )
)


def _split_job_kwargs(kwargs: dict) -> tuple[dict, dict]:
    known = {k: v for k, v in kwargs.items() if k in _JOB_ARGUMENTS}
    rest = {k: v for k, v in kwargs.items() if k not in _JOB_ARGUMENTS}
    return known, rest
