"""dask-jobqueue's ``SLURMCluster`` arguments, read as dask-jobqueue 0.9
reads them (the argument, else ``jobqueue.<config_name>.<key>`` in Dask's
configuration, where ``~/.config/dask/jobqueue.yaml`` lands), and turned
into drover's settings. Pure: nothing starts here, so every bad argument
is reported before anything is submitted."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import dask
from dask.utils import parse_bytes
from distributed.deploy.local import nprocesses_nthreads
from distributed.security import Security

from . import _drover
from ._native import split_settings

# dask-jobqueue 0.9's defaults for `jobqueue.slurm`, registered so that
# Dask's configuration answers for them without dask-jobqueue installed.
SLURM_DEFAULTS: dict[str, Any] = {
    "name": "dask-worker",
    "cores": None,
    "memory": None,
    "processes": None,
    "python": None,
    "interface": None,
    "death-timeout": 60,
    "local-directory": None,
    "shared-temp-directory": None,
    "extra": None,
    "worker-command": "distributed.cli.dask_worker",
    "worker-extra-args": [],
    "shebang": "#!/usr/bin/env bash",
    "queue": None,
    "account": None,
    "walltime": "00:30:00",
    "env-extra": None,
    "job-script-prologue": [],
    "job-cpu": None,
    "job-mem": None,
    "job-extra": None,
    "job-extra-directives": [],
    "job-directives-skip": [],
    "log-directory": None,
    "scheduler-options": {},
}

dask.config.update_defaults({"jobqueue": {"slurm": SLURM_DEFAULTS}})

# Deprecated names dask-jobqueue still honours, with a FutureWarning.
RENAMED = {
    "project": "account",
    "extra": "worker_extra_args",
    "job_extra": "job_extra_directives",
    "env_extra": "job_script_prologue",
    "header_skip": "job_directives_skip",
}

# `scheduler_options` drover's Dask scheduler takes beyond where it listens,
# as `dask scheduler` flags.
SCHEDULER_FLAGS = {"idle_timeout": "--idle-timeout", "preload": "--preload"}
SCHEDULER_OPTIONS = (
    "interface",
    "host",
    "port",
    "dashboard_address",
    "protocol",
    "security",
    "jupyter",
    *SCHEDULER_FLAGS,
)


@dataclass
class Resolved:
    """What a ``SLURMCluster`` is, in drover's terms."""

    job: dict  # drover job settings
    pool: dict  # drover pool settings
    dask_scheduler: dict  # port, dashboard_address, extra
    name: str  # the cluster's name; Dask workers are NAME-INDEX
    job_name: str  # the Slurm job name asked for
    cores: int
    processes: int
    memory: int  # bytes per job
    security: Security | None
    tls_files: list = field(default_factory=list)


class _Config:
    """The arguments given, falling back to Dask's configuration."""

    def __init__(self, config_name: str, given: dict):
        self.prefix = f"jobqueue.{config_name}"
        self.given = given

    def get(self, key: str, default: Any = None) -> Any:
        value = self.given.get(key)
        if value is None:
            value = dask.config.get(f"{self.prefix}.{key.replace('_', '-')}", default)
        return value

    def renamed(self, old: str, depth: int = 0) -> Any:
        """The value of the deprecated ``old``, warning as dask-jobqueue does;
        ``depth`` counts the helpers between ``resolve`` and this call, so the
        warning points at the user's line."""
        new = RENAMED[old]
        value = self.get(old)
        if value is not None:
            warnings.warn(
                f"{old} has been renamed to {new}. You are still using it (even if only set "
                f"to []; please also check config files). If you did not set {new} yet, {old} "
                "will be respected for now, but it will be removed in a future release.",
                FutureWarning,
                stacklevel=4 + depth,
            )
        return value


def _whole(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: accepted: a whole number, not {value!r}")
    return value


def _strings(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: accepted: a list of strings, not {value!r}")
    return [str(v) for v in value]


def _skip_option(entry: str) -> str:
    """The sbatch option a dask-jobqueue skip entry names (`--mem`,
    `#SBATCH -t`, `--mem=27G` all name their option)."""
    text = entry.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH") :].strip()
    word = text.split()[0] if text.split() else text
    return word.split("=", 1)[0]


def _nanny(value: Any) -> str:
    if value is True:
        return "agent"
    if value is False:
        return "none"
    if value in ("agent", "dask", "none"):
        return value
    raise ValueError(
        f"invalid value `{value}` for nanny: accepted: True (drover's agent restarts the worker), "
        "False (no nanny), or 'agent', 'dask' (Dask's own nanny process) or 'none'"
    )


def _memory(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(
            f"memory: accepted: a size such as '4GB' or a number of bytes, not {value!r}"
        )
    try:
        return int(parse_bytes(value))
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"invalid value `{value}` for memory: {e}; accepted: a size such as '4GB', "
            "'4 GiB' or '512MB', or a number of bytes"
        ) from None


def _script_lists(cfg: _Config) -> dict:
    """The job script's extra lines, each under its current name or its
    deprecated one."""
    skip = _strings(
        "job_directives_skip", cfg.get("job_directives_skip") or cfg.renamed("header_skip", 1)
    )
    return {
        "job_extra_directives": _strings(
            "job_extra_directives", cfg.get("job_extra_directives") or cfg.renamed("job_extra", 1)
        ),
        "job_script_prologue": _strings(
            "job_script_prologue", cfg.get("job_script_prologue") or cfg.renamed("env_extra", 1)
        ),
        "job_script_epilogue": _strings("job_script_epilogue", cfg.get("job_script_epilogue")),
        "job_directives_skip": [_skip_option(s) for s in skip],
    }


def resolve(given: dict, drover_settings: dict) -> Resolved:
    """Reads every argument as dask-jobqueue would and builds drover's settings."""
    config_name = given.get("config_name") or "slurm"
    cfg = _Config(config_name, given)
    cores = _whole("cores", cfg.get("cores"))
    memory = cfg.get("memory")
    if cores is None or memory is None:
        raise ValueError(
            "SLURMCluster needs the cores and the memory of each job, for example: "
            f"SLURMCluster(cores={cores or 8}, memory={memory or '24GB'!r})"
        )
    memory_bytes = _memory(memory)
    processes = _whole("processes", cfg.get("processes"))
    if processes is None:
        # dask-jobqueue's default: about sqrt(cores) processes. A bad
        # `cores` is left for drover's check to name.
        processes = nprocesses_nthreads(cores)[0] if cores >= 1 else 1
    account = cfg.get("account")
    project = cfg.renamed("project")
    if project is not None and not account:
        account = project
    job: dict[str, Any] = {
        "kind": "dask",
        "header_style": "dask-jobqueue",
        "cores": cores,
        "processes": processes,
        "memory": memory_bytes,
        # `name` names the cluster (and so its Dask workers); the config's
        # `name` is the Slurm job name, as in dask-jobqueue.
        "job_name": given.get("job_name") or dask.config.get(f"{cfg.prefix}.name", None),
        "queue": cfg.get("queue"),
        "account": account,
        "walltime": _walltime(cfg.get("walltime")),
        "job_cpu": _whole("job_cpu", cfg.get("job_cpu")),
        "job_mem": cfg.get("job_mem"),
        "death_timeout": cfg.get("death_timeout"),
        "local_directory": cfg.get("local_directory"),
        "log_directory": cfg.get("log_directory"),
        "shebang": cfg.get("shebang"),
        "python": cfg.get("python") or sys.executable,
        "interface": cfg.get("interface"),
        "dask_nanny": _nanny(given.get("nanny", True)),
        "dask_worker_module": cfg.get("worker_command") or SLURM_DEFAULTS["worker-command"],
    }
    job.update(_script_lists(cfg))
    worker_args = _strings(
        "worker_extra_args", cfg.get("worker_extra_args") or cfg.renamed("extra")
    )
    name = given.get("name") or str(uuid.uuid4())[:8]
    job["dask_worker_name"] = name
    scheduler, pool, protocol, security = _scheduler(cfg, given, job["interface"])
    tls_files: list = []
    if security is not None:
        where = cfg.get("shared_temp_directory") or os.getcwd()
        scheduler["extra"] += _tls_args(security, "scheduler", where, tls_files)
        worker_args += _tls_args(security, "worker", where, tls_files)
    if protocol:
        worker_args += ["--protocol", protocol]
    job["worker_extra_args"] = worker_args
    extra_job, extra_pool = split_settings(drover_settings, "SLURMCluster")
    job.update(extra_job)
    pool.update(extra_pool)
    return Resolved(
        job={k: v for k, v in job.items() if v is not None},
        pool=pool,
        dask_scheduler=scheduler,
        name=name,
        job_name=job["job_name"],
        cores=cores,
        processes=processes,
        memory=memory_bytes,
        security=security,
        tls_files=tls_files,
    )


def _walltime(value: Any) -> str | None:
    """Slurm reads a bare number as minutes; so does drover's `MM` form."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"walltime: accepted: a Slurm time such as '01:30:00', not {value!r}")


def _scheduler(cfg: _Config, given: dict, worker_interface: str | None):
    """Where the schedulers listen and how Dask's starts, from
    ``scheduler_options`` over dask-jobqueue's defaults."""
    security = given.get("security")
    protocol = given.get("protocol")
    if security is True:
        security = Security.temporary()
    if protocol is None and security is not None:
        protocol = "tls://"
    options = cfg.get("scheduler_options") or {}
    if not isinstance(options, dict):
        raise TypeError(f"scheduler_options: accepted: a dict, not {options!r}")
    options = {"protocol": protocol, "dashboard_address": ":8787", **options}
    unknown = sorted(set(options) - set(SCHEDULER_OPTIONS))
    if unknown:
        raise TypeError(
            f"scheduler_options: drover's Dask scheduler does not take {unknown[0]!r}; it takes: "
            + ", ".join(SCHEDULER_OPTIONS)
        )
    if options.get("security") is not None:
        security = options["security"]
    pool: dict[str, Any] = {}
    if options.get("host"):
        pool["scheduler_host"] = _address(options["host"])
    elif options.get("interface") or worker_interface:
        pool["scheduler_interface"] = options.get("interface") or worker_interface
    scheduler = {
        "port": _whole("scheduler_options['port']", options.get("port")) or 0,
        "dashboard_address": str(options["dashboard_address"]),
        "extra": [],
    }
    if options.get("protocol"):
        scheduler["extra"] += ["--protocol", options["protocol"].rstrip(":/")]
    for key, flag in SCHEDULER_FLAGS.items():
        for value in _as_list(options.get(key)):
            scheduler["extra"] += [flag, str(value)]
    if options.get("jupyter"):
        scheduler["extra"].append("--jupyter")
    proto = protocol.rstrip(":/") if protocol else None
    return scheduler, pool, proto, security


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _address(host: str) -> str:
    """An address for ``host`` (drover listens on addresses, not names)."""
    try:
        return socket.gethostbyname(host)
    except OSError as e:
        raise ValueError(
            f"invalid value `{host}` for scheduler_options['host']: {e}; accepted: "
            "an address or a host name this machine resolves"
        ) from None


def _tls_args(security: Security, role: str, where: str, keep: list) -> list[str]:
    """``dask`` flags for ``role``'s TLS files; credentials held in memory
    (``Security.temporary()``) are written to files only this user reads,
    in ``where``, which the compute nodes must see."""
    args: list[str] = []
    for key, value in security.get_tls_config_for_role(role).items():
        if key == "ciphers" or value is None:
            continue
        if "\n" in value:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the cluster
                mode="w", prefix=f".drover-tls-{role}-{key}-", dir=where
            )
            handle.write(value)
            handle.flush()
            keep.append(handle)
            value = handle.name
        args += [f"--tls-{key.replace('_', '-')}", value]
    return args


# drover's settings that dask-jobqueue's arguments set under other names.
ARGUMENT_OF = {
    "dask_worker_module": "worker_command",
    "dask_nanny": "nanny",
    "dask_worker_name": "name",
}


def preview(job: dict) -> str:
    """The job script ``job`` makes, every value checked as the pool will
    check it; an error names the argument as dask-jobqueue spells it."""
    try:
        return _drover.job_script(job, False)
    except ValueError as e:
        message = str(e)
        for setting, argument in ARGUMENT_OF.items():
            message = message.replace(f"for {setting}:", f"for {argument}:", 1)
        raise ValueError(message) from None


def jobs_for(resolved: Resolved, n: int | None, jobs: int, memory: Any, cores: Any) -> int:
    """The jobs that ``scale(n, jobs, memory, cores)`` asks for, as
    dask-jobqueue counts them: the most that any argument needs."""
    per_job = (resolved.processes, resolved.cores, resolved.memory)
    return _drover.jobs_for(
        per_job,
        # As dask-jobqueue does, `n` replaces `jobs`.
        n=_size("n", n),
        jobs=(_size("jobs", jobs) or 0) if n is None else None,
        cores=_size("cores", cores),
        memory=None if memory is None else _size("memory", _memory(memory)),
    )


def _size(name: str, value: Any) -> int | None:
    """A whole number of 0 or more (a pool holds at most 100,000 jobs, so
    larger sizes are cut there rather than overflowing)."""
    value = _whole(name, value)
    if value is not None and value < 0:
        raise ValueError(f"invalid value `{value}` for {name}: accepted: a whole number, 0 or more")
    return value if value is None else min(value, 2**63)
