"""One scale-up round from Python, for `cargo bench --bench python`: start
a cluster, time scale(N) until N workers are up, close, print the time.

    python python_scale.py native|dask|jobqueue --workers N --log-directory DIR

- native: drover.SlurmCluster (drover's own workers; the Rust API's round
  in the same benchmark uses the same settings);
- dask: drover.dask.SLURMCluster, until Dask sees N workers;
- jobqueue: dask_jobqueue.SLURMCluster, the same arguments.
"""

import argparse
import sys
import time


def native(n, log_directory):
    import drover

    cluster = drover.SlurmCluster(
        cores=1,
        memory="256MB",
        walltime="00:20:00",
        interface="ib0",
        scheduler_interface="drvbr0",
        job_name="py-native-bench",
        log_directory=log_directory,
    )
    t0 = time.perf_counter()
    cluster.scale(n)
    cluster.wait_for_workers(n, timeout=300)
    took = time.perf_counter() - t0
    cluster.close()
    return took


def dask_like(cls, n, log_directory):
    from dask.distributed import Client

    cluster = cls(
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:20:00",
        interface="ib0",
        scheduler_options={"interface": "drvbr0"},
        log_directory=log_directory,
        job_name="py-dask-bench",
        python=sys.executable,
        death_timeout=30,
    )
    client = Client(cluster)
    t0 = time.perf_counter()
    cluster.scale(n)
    client.wait_for_workers(n, timeout=300)
    took = time.perf_counter() - t0
    client.close()
    cluster.close()
    return took


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["native", "dask", "jobqueue"])
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--log-directory", default=".")
    a = p.parse_args()
    if a.kind == "native":
        took = native(a.workers, a.log_directory)
    elif a.kind == "dask":
        from drover.dask import SLURMCluster

        took = dask_like(SLURMCluster, a.workers, a.log_directory)
    else:
        from dask_jobqueue import SLURMCluster

        took = dask_like(SLURMCluster, a.workers, a.log_directory)
    print(f"scale-up s: {took:.3f}", flush=True)


if __name__ == "__main__":
    main()
