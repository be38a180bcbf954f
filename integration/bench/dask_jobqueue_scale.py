"""dask-jobqueue's SLURMCluster scaling on the local Slurm: the reference
drover's cluster benchmark compares with. Prints one line per round and
the median scale-up time."""

import argparse
import statistics
import subprocess
import sys
import time

from dask.distributed import Client
from dask_jobqueue import SLURMCluster


def queued(name):
    out = subprocess.run(
        ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=False
    )
    return len(out.stdout.split())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--log-directory", default=".")
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait before each round (Slurm's batch_sched_delay)",
    )
    a = p.parse_args()
    ups, closes = [], []
    for r in range(a.rounds):
        time.sleep(a.settle)
        cluster = SLURMCluster(
            cores=1,
            processes=1,
            memory="1GB",
            walltime="00:20:00",
            interface="ib0",
            scheduler_options={"interface": "drvbr0"},
            log_directory=a.log_directory,
            job_name="dask-bench",
            python=sys.executable,
            death_timeout=30,
        )
        client = Client(cluster)
        t0 = time.perf_counter()
        cluster.scale(a.workers)
        client.wait_for_workers(a.workers, timeout=300)
        ups.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        client.close()
        cluster.close()
        while queued("dask-bench"):
            time.sleep(0.05)
        closes.append(time.perf_counter() - t0)
        print(
            f"dask-jobqueue round {r + 1}: scale({a.workers}) {ups[-1]:.2f} s, close {closes[-1]:.2f} s",
            flush=True,
        )
    print(f"dask-jobqueue median scale-up s: {statistics.median(ups):.3f}")
    print(f"dask-jobqueue median close s: {statistics.median(closes):.3f}")


if __name__ == "__main__":
    main()
