"""A dask-jobqueue program, the way HPC users write them, with one line
changed: the import. It runs inside a Slurm job (see launcher.sh), scales a
pool of Dask workers on ib0, draws and computes the seed's delayed graph
(inc, double, add over 1..5, summed: 50), and closes the pool.

    sbatch slurm/examples/dask/launcher.sh VENV slurm/examples/dask/jobqueue_driver.py [N]
"""

import sys

import dask
from dask.distributed import Client

from drover.dask import SLURMCluster  # was: from dask_jobqueue import SLURMCluster


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
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    cluster = SLURMCluster(
        cores=1, processes=1, memory="4GB", walltime="01:00:00", queue="batch", interface="ib0"
    )
    cluster.scale(n)
    client = Client(cluster)
    client.wait_for_workers(n)
    parts = [add(inc(x), double(x)) for x in range(1, 6)]
    total = dask.delayed(sum)(parts)
    total.visualize(filename="seed-graph.svg")
    print(total.compute())
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
