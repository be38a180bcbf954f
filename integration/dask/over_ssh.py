"""The seed's Dask program with its pool on the login node: run on the
local Slurm's laptop (`slurm/local-cluster laptop`) by test_ssh.py.

    python over_ssh.py LOG_DIRECTORY

The only change to the seed's program is `ssh="login"` (and drover's path
there: the same filesystem, so this package's own).
"""

import sys

import dask
from dask.distributed import Client

from drover._binary import binary
from drover.dask import SLURMCluster


@dask.delayed
def inc(x):
    return x + 1


@dask.delayed
def double(x):
    return 2 * x


@dask.delayed
def add(x, y):
    return x + y


def main():
    cluster = SLURMCluster(
        ssh="login",
        remote_drover=binary(),
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        interface="ib0",
        log_directory=sys.argv[1],
    )
    cluster.scale(2)
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    parts = [add(inc(x), double(x)) for x in range(1, 6)]
    print("total =", dask.delayed(sum)(parts).compute())
    print("workers:", " ".join(sorted(client.scheduler_info()["workers"])))
    logs = cluster.get_logs()
    print("logs:", sum(1 for name, text in logs.items() if "dask" in str(text).lower()))
    client.close()
    cluster.close()
    print("closed")


if __name__ == "__main__":
    main()
