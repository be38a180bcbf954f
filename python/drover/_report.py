"""What a pool cost and what it used: ``SlurmCluster.report()``.

Allocated figures are Slurm's own (each job's start, end and TRES from
its accounting, with the partition's billing weights applied by Slurm);
busy figures are the tasks' runs, each its cores for as long as it ran.
Without accounting the workers' lifetimes stand in, and ``source`` says
so; a pool with ``accounting = false`` keeps none (``source`` is
``"off"``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Usage:
    """A pool's (or one group's) cost and use."""

    jobs: int
    workers: int
    allocated_core_seconds: float
    allocated_gpu_seconds: float
    allocated_memory_gib_seconds: float
    busy_core_seconds: float
    busy_gpu_seconds: float
    #: The allocated core-seconds no task used.
    idle_fraction: float
    #: Slurm's billing TRES times hours (its CPUs where no weights are set).
    billing_units: float
    #: Joules where Slurm measured every job's; ``None``: not measured.
    energy_joules: int | None
    #: One line: "3 workers, 0.12 core-h allocated, 0.07 busy (53 %), ...".
    summary: str
    #: Core-seconds of idle jobs an adaptive pool kept only because it had
    #: gone up within its cooldown (``adapt-cooldown``).
    cooldown_idle_core_seconds: float = 0.0

    @classmethod
    def _from(cls, d: dict) -> Usage:
        return cls(**{f: d[f] for f in cls.__dataclass_fields__ if f in d})


@dataclass(frozen=True)
class Report:
    """``total`` and, in a pool with groups, each group's ``Usage``."""

    total: Usage
    groups: dict[str, Usage] = field(default_factory=dict)
    #: Where the allocated figures came from: ``"slurm_accounting"``,
    #: ``"worker_lifetimes"``, ``"none"``, or ``"off"`` (``accounting =
    #: false``).
    source: str = "none"
    #: When the report was made (Unix seconds).
    at: float = 0.0

    @classmethod
    def _from(cls, d: dict) -> Report:
        return cls(
            total=Usage._from(d["total"]),
            groups={k: Usage._from(v) for k, v in d["groups"].items()},
            source=d["source"],
            at=d["at_ms"] / 1000,
        )

    @property
    def summary(self) -> str:
        """The pool's one line, as ``drover run`` prints it at the end."""
        return self.total.summary

    def __str__(self) -> str:
        return self.summary

    def _repr_html_(self) -> str:
        """A table for notebooks: a row per group, then the total."""
        head = (
            "group",
            "jobs",
            "workers",
            "core-h",
            "busy core-h",
            "idle",
            "GPU-h",
            "billing units",
            "energy",
        )
        rows = [*self.groups.items(), ("total", self.total)]
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in _row(n, u)) + "</tr>"
            for n, u in rows
        )
        header = "".join(f"<th>{h}</th>" for h in head)
        return (
            f"<table><thead><tr>{header}</tr></thead><tbody>{cells}</tbody></table>"
            f"<p>{html.escape(self.summary)}; allocated figures from "
            f"{html.escape(self.source.replace('_', ' '))}</p>"
        )


def _row(name: str, u: Usage) -> tuple:
    energy = "not measured" if u.energy_joules is None else f"{u.energy_joules / 1000:.1f} kJ"
    return (
        name,
        u.jobs,
        u.workers,
        f"{u.allocated_core_seconds / 3600:.3f}",
        f"{u.busy_core_seconds / 3600:.3f}",
        f"{100 * u.idle_fraction:.0f} %",
        f"{u.allocated_gpu_seconds / 3600:.3f}",
        f"{u.billing_units:.3f}",
        energy,
    )
