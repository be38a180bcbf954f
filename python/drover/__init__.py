"""drover: elastic worker pools on Slurm.

``drover.SlurmCluster`` runs command tasks and graphs on a pool of Slurm
jobs; ``drover.dask.SLURMCluster`` is a drop-in for dask-jobqueue's
``SLURMCluster`` (change one import). The pool logic is drover's Rust
code; importing ``drover`` does not import Dask.
"""

from ._binary import binary
from ._drover import __version__
from ._errors import ClusterError, DroverError, TaskFailed, WorkersTimeout
from ._native import SlurmCluster, Task
from ._records import Record
from ._report import Report, Usage

__all__ = [
    "ClusterError",
    "DroverError",
    "Record",
    "Report",
    "SlurmCluster",
    "Task",
    "TaskFailed",
    "Usage",
    "WorkersTimeout",
    "__version__",
    "binary",
]
