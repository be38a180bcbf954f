"""``drover.SlurmCluster``: a pool of drover workers on Slurm running
command tasks, from Python. The pool itself is drover's Rust code
(``drover._drover.Cluster``); this module shapes its calls for Python:
keyword settings, task handles, graphs, records."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Union

from . import _drover
from ._binary import binary
from ._errors import TaskFailed
from ._records import Record
from ._report import Report

# The states a task ends in, as the binding names them.
_FINAL_STATES = frozenset(_drover.final_task_states())

Command = Union[str, Sequence[str]]

_JOB_KEYS, _POOL_KEYS = (frozenset(keys) for keys in _drover.setting_keys())

# Clusters still open, closed when the interpreter exits.
_live: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_clusters() -> None:
    for cluster in list(_live):
        try:
            cluster.close()
        except Exception as e:  # noqa: BLE001 - exiting: close the others still
            logging.getLogger("drover").warning("closing %r at exit failed: %s", cluster, e)


def split_settings(settings: Mapping[str, Any], caller: str) -> tuple[dict, dict]:
    """Routes keyword settings to the job's table or the pool's; an unknown
    keyword is a ``TypeError`` naming it."""
    job: dict = {}
    pool: dict = {}
    for key, value in settings.items():
        if key in _JOB_KEYS:
            job[key] = _plain(value)
        elif key in _POOL_KEYS:
            pool[key] = _plain(value)
        else:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {key!r}; drover's settings are: "
                + ", ".join(sorted(_JOB_KEYS | _POOL_KEYS))
            )
    return job, pool


def _plain(value: Any) -> Any:
    """Paths as strings, durations as seconds, tuples as lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _seconds(name: str, value: Any) -> float | None:
    """A duration given as seconds, a ``timedelta`` or text such as ``5m``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise TypeError(f"{name}: accepted: seconds (a number), a timedelta or text such as '5m'")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _drover.parse_timeout(name, value)
    raise TypeError(f"{name}: accepted: seconds (a number), a timedelta or text such as '5m'")


def _argv(command: Command) -> list[str]:
    """A shell line runs through ``sh -c``; a sequence runs as is."""
    if isinstance(command, str):
        return ["sh", "-c", command]
    if isinstance(command, Sequence) and command:
        return [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in command]
    raise TypeError(
        f"command: accepted: a shell line (str) or a non-empty argv list, not {command!r}"
    )


class Task:
    """A command task of a cluster: its id and name, and ways to look at it
    and wait for it. ``result()`` is its standard output."""

    __slots__ = ("_cluster", "id", "name")

    def __init__(self, cluster: _drover.Cluster, task_id: int, name: str | None = None):
        self._cluster = cluster
        self.id = task_id
        self.name = name

    def info(self) -> Record:
        """Where it is now: ``state``, ``attempts``, ``worker``, ``output``..."""
        return Record(self._cluster.tasks([self.id])[0])

    @property
    def state(self) -> str:
        """``waiting``, ``ready``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self.info().state

    def done(self) -> bool:
        """Whether it has ended."""
        return self.state in _FINAL_STATES

    def wait(self, timeout: float | None = None) -> Record:
        """Waits until it ends (``TimeoutError`` after ``timeout`` seconds)."""
        return Record(self._cluster.wait_tasks([self.id], _seconds("timeout", timeout))[0])

    def result(self, timeout: float | None = None) -> str:
        """Its standard output, once it has succeeded; ``TaskFailed`` if not.
        Past 256 KiB this is the start: ``info().output`` also has
        ``stdout_tail``, ``stdout_bytes`` and ``stdout_file`` (the whole
        output, on the worker's filesystem)."""
        return _output(self.wait(timeout))

    def cancel(self) -> None:
        """Cancels it and what depends on it."""
        self._cluster.cancel_task(self.id)

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"<drover.Task t{self.id}{named}>"


def _output(info: Record) -> str:
    """The standard output of an ended task, or its failure raised."""
    output = info.output
    if info.state != "succeeded":
        raise TaskFailed(
            info.id,
            info.name,
            info.state,
            output.exit_code if output else None,
            output.stderr_tail if output else "",
            info.reason,
        )
    return output.stdout if output else ""


class SlurmCluster:
    """A pool of drover workers on Slurm, each its own Slurm job, running
    command tasks.

    Settings are keywords, as in ``drover.toml``'s ``[job]`` and ``[pool]``
    tables with ``_`` for ``-``: ``cores``, ``memory``, ``processes``,
    ``walltime``, ``queue``, ``account``, ``interface``, ``job_name``,
    ``log_directory``, ``job_extra_directives``, ``job_script_prologue``,
    ``job_cpu``, ``job_mem``, ... and ``scheduler_interface``,
    ``idle_timeout``, ``poll_interval``, ... (the README lists them all).
    drover's config files and ``DROVER_*`` variables lie beneath them.

    >>> with drover.SlurmCluster(cores=1, memory="1GB", queue="batch") as cluster:
    ...     cluster.scale(4)
    ...     cluster.wait_for_workers(4)
    ...     print(cluster.submit("hostname").result())

    ``groups`` makes a pool of several kinds of workers under one scheduler:
    a mapping of group names to job settings laid over the others, each
    group sized with ``scale(n, group=...)`` or ``adapt(..., group=...)``;
    tasks asking for memory, GPUs, ``resources`` or a ``group`` run only
    where they fit.

    >>> drover.SlurmCluster(cores=1, groups={"small": {}, "big": {"queue": "big", "memory": "64GB"}})
    """

    def __init__(
        self,
        n_workers: int = 0,
        *,
        groups: Mapping[str, Mapping[str, Any]] | None = None,
        ssh: str | None = None,
        remote_drover: str | None = None,
        name: str | None = None,
        **settings: Any,
    ):
        job, pool = split_settings(settings, type(self).__name__)
        if ssh is None:
            # DROVER_SSH, or `[site] ssh` in drover's config files.
            site_ssh, site_drover = _drover.remote_site()
            if site_ssh is not None:
                ssh = site_ssh
                if remote_drover is None:
                    remote_drover = site_drover
        if ssh is not None:
            # The pool runs on the login node `ssh` names; this process
            # drives it through one ssh connection (README, "A driver
            # outside the cluster").
            if groups:
                raise ValueError("groups= with ssh=: a pool with groups cannot run over ssh yet")
            self._cluster = _remote(ssh, remote_drover, name, job, pool)
        else:
            if remote_drover is not None or name is not None:
                raise ValueError("remote_drover= and name= are for a pool over ssh=: give ssh= too")
            job.setdefault("drover_bin", binary())
            # Slurm is asked whether it takes the jobs at the start when some
            # are wanted now, else at their first submission.
            self._cluster = _drover.Cluster(
                job, pool, groups=_groups(groups), check=bool(n_workers)
            )
        self._spec = self._cluster.spec
        _live.add(self)
        # A pool continued from its journal keeps the size it had.
        if n_workers and not self.restored:
            self.scale(n_workers)

    @classmethod
    def attach(cls, *, ssh: str, name: str, remote_drover: str | None = None) -> SlurmCluster:
        """The pool ``name`` that ``SlurmCluster(..., ssh=, name=)`` or
        ``drover cluster up --ssh`` started on the login node ``ssh``, reached
        again from this process (within its ``remote_grace`` after its last
        driver went away); ``close()`` closes it."""
        self = cls.__new__(cls)
        self._cluster = _remote(ssh, remote_drover, _text("name", name), None, None)
        self._spec = None
        _live.add(self)
        return self

    @property
    def restored(self) -> bool:
        """Whether this cluster continues a pool from its ``journal``
        (its size, jobs, workers, tasks and results came back with it)."""
        return self._cluster.restored

    # -- size ---------------------------------------------------------------

    def scale(
        self,
        n: int | None = None,
        *,
        jobs: int | None = None,
        cores: int | None = None,
        memory: str | int | None = None,
        group: str | None = None,
    ) -> None:
        """Asks for ``n`` workers, or ``jobs`` jobs, or enough jobs for
        ``cores`` cores or ``memory``; the largest when several are given.
        Stops adapting. In a pool with groups, ``group`` names the group
        (``n`` workers of it)."""
        if self._grouped(group):
            self._cluster.scale_group(group, _count("n", n or 0))
            return
        if memory is not None and not isinstance(memory, int):
            memory = _drover.parse_memory(str(memory))
        self._cluster.scale_jobs(
            _drover.jobs_for(
                self._cluster.per_job,
                n=None if n is None else _count("n", n),
                jobs=None if jobs is None else _count("jobs", jobs),
                cores=None if cores is None else _count("cores", cores),
                memory=None if memory is None else _count("memory", memory),
            )
        )

    def adapt(
        self,
        minimum: int = 0,
        maximum: int | None = None,
        *,
        idle_timeout: Any = None,
        group: str | None = None,
    ) -> None:
        """Sizes the pool (or its ``group``) to its tasks, between
        ``minimum`` and ``maximum`` workers, retiring workers idle for
        ``idle_timeout``."""
        low = _count("minimum", minimum)
        high = low if maximum is None else _count("maximum", maximum)
        if high < low:
            raise ValueError(f"maximum ({high}) is below minimum ({low})")
        idle = _seconds("idle_timeout", idle_timeout)
        if self._grouped(group):
            self._cluster.adapt_group(group, low, high, idle)
            return
        self._cluster.adapt(low, high, idle)

    @property
    def groups(self) -> list[str]:
        """The names of its groups, in order (empty without groups)."""
        return self._cluster.groups

    def _grouped(self, group: str | None) -> bool:
        """Whether a size is for one group; a pool with groups needs one."""
        names = self._cluster.groups
        if group is not None and not isinstance(group, str):
            raise TypeError(f"group: accepted: a group name (str), not {group!r}")
        if names and group is None:
            raise ValueError(f"group: this pool has groups {', '.join(names)}; name one")
        if not names and group is not None:
            raise ValueError(f"group: this pool has no groups, so no group {group!r}")
        return group is not None

    def wait_for_workers(self, n: int, timeout: Any = None) -> None:
        """Waits until ``n`` workers have registered; ``WorkersTimeout``
        (saying where the jobs are) after ``timeout``, ``ClusterError`` as
        soon as a job fails before its worker registers."""
        self._cluster.wait_for_workers(_count("n", n), _seconds("timeout", timeout))

    # -- work -----------------------------------------------------------------

    def submit(
        self,
        command: Command,
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        cores: int = 1,
        time_limit: Any = None,
        retries: int = 0,
        after: Iterable[Task | int] = (),
        memory: str | int | None = None,
        gpus: int = 0,
        resources: Mapping[str, int] | None = None,
        group: str | None = None,
    ) -> Task:
        """Runs ``command`` on a worker: a shell line (``sh -c``) or an argv
        list. ``after`` lists tasks that must succeed first; ``memory``
        (``"2GiB"``, or bytes) keeps it to a worker with that much free, as
        ``gpus`` (with ``CUDA_VISIBLE_DEVICES`` naming its own) and
        ``resources`` (``{"licence": 1}``) do; ``group`` names the pool
        group it must run in."""
        spec = _task_spec(
            command,
            name,
            env,
            cwd,
            cores,
            time_limit,
            retries,
            after,
            memory,
            gpus,
            resources,
            group,
        )
        (task_id,) = self._cluster.submit([spec])
        return Task(self._cluster, task_id, name)

    def map(
        self,
        command: Callable[[Any], Command] | Command,
        items: Iterable[Any],
        **options: Any,
    ) -> list[Task]:
        """One task per item, submitted as one batch: ``command(item)``, or
        ``command.format(item)`` for a shell line (each word, for a list)."""
        specs = []
        for item in items:
            if callable(command):
                line = command(item)
            elif isinstance(command, str):
                line = command.format(item)
            else:
                line = [str(word).format(item) for word in command]
            specs.append(_task_spec(line, **_task_options(options)))
        ids = self._cluster.submit(specs) if specs else []
        return [Task(self._cluster, i) for i in ids]

    def gather(self, tasks: Iterable[Task], timeout: Any = None) -> list[str]:
        """The standard output of each task, in order, once all have ended;
        ``TaskFailed`` for the first that did not succeed."""
        tasks = list(tasks)
        infos = self._cluster.wait_tasks([t.id for t in tasks], _seconds("timeout", timeout))
        by_id = {info["id"]: Record(info) for info in infos}
        return [_output(by_id[t.id]) for t in tasks]

    def submit_graph(self, graph: str | os.PathLike | Mapping[str, Any]) -> dict[str, Task]:
        """Submits a graph (a graph file's path, or a dict of its shape:
        ``{"tasks": {name: {"command": ..., "after": [...]}}}``; ``{{name}}``
        in a command is that task's output) as one batch."""
        source = os.fspath(graph) if isinstance(graph, os.PathLike) else graph
        specs = _drover.graph_tasks(source)
        ids = self._cluster.submit(specs)
        return {s["name"]: Task(self._cluster, i, s["name"]) for s, i in zip(specs, ids)}

    def run_graph(
        self, graph: str | os.PathLike | Mapping[str, Any], timeout: Any = None
    ) -> dict[str, str]:
        """Runs a graph to its end: each task's standard output, stripped,
        by name; ``TaskFailed`` if one failed."""
        tasks = self.submit_graph(graph)
        outputs = self.gather(tasks.values(), timeout)
        return {name: out.strip() for name, out in zip(tasks, outputs)}

    # -- looking at it ------------------------------------------------------------

    def status(self) -> Record:
        """Target, every job (``job``, ``job_id``, ``state``, ``reason`` while
        pending, ``node``, ``exit_code``, ``workers``, ``log``, ``end``),
        failures."""
        return Record(self._cluster.status())

    def jobs(self) -> list:
        """Every job of the pool, as ``status().jobs``: Slurm's state name
        (``"FAILED"``, ``"PREEMPTED"``...), exit code, node, workers and
        log; ``end`` says how the end of a job that left ``squeue`` before
        the pool saw it end is known: ``{"from": "sacct", "signal",
        "cancelled_by", "elapsed_s", "max_rss_bytes"}`` read from Slurm's
        accounting, ``{"from": "unknown"}`` without accounting, or
        ``{"from": "unrecorded"}``; ``None`` for the rest."""
        return list(self.status().jobs)

    def report(self) -> Report:
        """What the pool cost and used so far (after ``close()``: in all):
        allocated core-, GPU- and memory-seconds from Slurm's accounting,
        busy core- and GPU-seconds of the tasks, the idle fraction, billing
        units by the partition's weights and energy where Slurm measures
        it, in total and per group. A notebook shows it as a table."""
        return Report._from(self._cluster.report())

    def logs(self, worker: str) -> str:
        """The stdout and stderr logs of the job that runs ``worker`` (a
        worker's name or id, or a job id)."""
        return self._cluster.logs(str(worker))

    def job_script(self) -> str:
        """The script each worker job is submitted with."""
        return self._cluster.job_script

    def dashboard_url(self) -> str:
        """A URL that logs one browser in to the pool's live status page, once,
        within 5 minutes (``drover dashboard`` prints the same)."""
        return self._cluster.dashboard_url()

    @property
    def address(self) -> str:
        """The scheduler's address."""
        return self._cluster.address

    @property
    def scheduler_file(self) -> str:
        """The scheduler file ``drover`` commands take (``--scheduler-file``)."""
        return self._cluster.scheduler_file

    @property
    def job_name(self) -> str:
        """The Slurm job name of the pool's jobs (it carries the cluster id);
        ``None`` for a pool attached over ssh (its settings are on its host)."""
        return self._spec["job_name"] if self._spec else None

    # -- the end ----------------------------------------------------------------

    def close(self) -> None:
        """Workers retire, the rest of the pool's jobs are cancelled; none is
        left in the queue when it returns."""
        first = self in _live
        _live.discard(self)
        self._cluster.close()
        if first:
            # The pool's last word: what it cost ("32 workers, 0.9 core-h ...").
            print(f"drover: {self.report().summary}", file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # A cluster whose start failed has no pool to name.
        if not hasattr(self, "_cluster"):
            return "<drover.SlurmCluster (not started)>"
        return f"<drover.SlurmCluster {self._cluster.cluster_id} at {self.address}>"


def _remote(ssh: Any, remote_drover: Any, name: Any, job: dict | None, pool: dict | None):
    """A pool on the login node ``ssh``, through this package's drover."""
    ssh = _text("ssh", ssh)
    if remote_drover is not None:
        remote_drover = _text("remote_drover", remote_drover)
    if name is not None:
        name = _text("name", name)
    return _drover.RemoteCluster(binary(), ssh, job, pool, name, remote_drover)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: accepted: a whole number, not {value!r}")
    if value < 0:
        raise ValueError(f"invalid value `{value}` for {name}: accepted: a whole number, 0 or more")
    # Rust takes sizes as 64-bit numbers; a pool holds at most 100,000 jobs
    # anyway, so a larger size is cut there rather than overflowing.
    return min(value, 2**63)


def _groups(groups: Mapping[str, Mapping[str, Any]] | None) -> list | None:
    """``groups`` (a mapping of names to job settings, or a list of job
    settings each with its ``name``) as ``(name, job settings)`` pairs, in
    order; each group's settings must be job settings."""
    if groups is None:
        return None
    if isinstance(groups, (list, tuple)):
        # A list of specs, each naming its group: [{"name": "gpu", "gres": "gpu:1"}, ...].
        named = {}
        for spec in groups:
            if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
                raise TypeError(
                    f"groups: accepted: a list of job settings each with a 'name', not {spec!r}"
                )
            if spec["name"] in named:
                raise ValueError(f"groups: two groups are named {spec['name']!r}")
            named[spec["name"]] = {k: v for k, v in spec.items() if k != "name"}
        groups = named
    if not isinstance(groups, Mapping) or not groups:
        raise TypeError(
            f"groups: accepted: a non-empty mapping of names to job settings, not {groups!r}"
        )
    pairs = []
    for name, settings in groups.items():
        if not isinstance(name, str) or not isinstance(settings, Mapping):
            raise TypeError(
                f"groups: accepted: names (str) mapped to job settings (dict), not {name!r}: {settings!r}"
            )
        job, pool = split_settings(dict(settings), f"groups[{name!r}]")
        if pool:
            raise TypeError(
                f"groups[{name!r}]: {min(pool)!r} is a pool setting; groups take job settings only"
            )
        pairs.append((name, job))
    return pairs


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: accepted: a name (str), not {value!r}")
    return value


def _task_options(options: Mapping[str, Any]) -> dict:
    allowed = {
        "name",
        "env",
        "cwd",
        "cores",
        "time_limit",
        "retries",
        "after",
        "memory",
        "gpus",
        "resources",
        "group",
    }
    unknown = set(options) - allowed - {"name"}
    if unknown:
        raise TypeError(f"map() got an unexpected keyword argument {min(unknown)!r}")
    out = {k: None for k in ("name", "env", "cwd", "time_limit", "memory", "resources", "group")}
    out.update(cores=1, retries=0, after=(), gpus=0)
    out.update(options)
    return out


def _task_spec(
    command,
    name=None,
    env=None,
    cwd=None,
    cores=1,
    time_limit=None,
    retries=0,
    after=(),
    memory=None,
    gpus=0,
    resources=None,
    group=None,
):
    """Checks each argument (errors name it) and has the binding build the
    spec, so its wire form is Rust's own."""
    limit = _seconds("time_limit", time_limit)
    if memory is not None and not isinstance(memory, int):
        memory = _drover.parse_memory(str(memory))
    if resources is not None and not isinstance(resources, Mapping):
        raise TypeError(f"resources: accepted: a mapping of names to counts, not {resources!r}")
    return _drover.task_spec(
        _argv(command),
        name=None if name is None else str(name),
        env={str(k): str(v) for k, v in env.items()} if env else None,
        cwd=None if cwd is None else os.fspath(cwd),
        cores=_count("cores", cores),
        time_limit_ms=None if limit is None else int(limit * 1000),
        retries=_count("retries", retries),
        deps=[a.id if isinstance(a, Task) else _count("after", a) for a in after],
        memory_bytes=None if memory is None else _count("memory", memory),
        gpus=_count("gpus", gpus),
        resources=None
        if resources is None
        else {_text("resources", k): _count(f"resources[{k!r}]", v) for k, v in resources.items()},
        group=None if group is None else _text("group", group),
    )
