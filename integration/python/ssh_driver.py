"""A native pool on the login node, driven from the local Slurm's laptop
(`slurm/local-cluster laptop`) by test_ssh.py:

    python ssh_driver.py start NAME LOG_DIRECTORY   # 2 workers, a task, then waits to be killed
    python ssh_driver.py attach NAME                # the same pool again; closes it
    python ssh_driver.py adapt LOG_DIRECTORY        # an adaptive pool sized by its tasks
"""

import sys
import time

import drover
from drover._binary import binary


def start(name: str, logs: str) -> None:
    cluster = drover.SlurmCluster(
        2,
        ssh="login",
        name=name,
        remote_drover=binary(),
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        interface="ib0",
        log_directory=logs,
    )
    cluster.wait_for_workers(2, timeout=120)
    print("task:", cluster.submit("echo from-a-node").result().strip(), flush=True)
    print("ready", cluster.status().registered, flush=True)
    time.sleep(3600)


def attach(name: str) -> None:
    cluster = drover.SlurmCluster.attach(ssh="login", name=name, remote_drover=binary())
    status = cluster.status()
    print("attached", status.registered, flush=True)
    worker = status.jobs[0].workers[0].name
    print("log bytes:", len(cluster.logs(worker)), flush=True)
    cluster.close()
    print("closed", flush=True)


def adapt(logs: str) -> None:
    cluster = drover.SlurmCluster(
        ssh="login",
        remote_drover=binary(),
        cores=1,
        memory="1GB",
        walltime="00:10:00",
        interface="ib0",
        log_directory=logs,
    )
    cluster.adapt(0, 2, idle_timeout=2)
    tasks = [cluster.submit("sleep 2 && echo done") for _ in range(4)]
    print("results:", sorted(t.result().strip() for t in tasks), flush=True)
    print("jobs:", len(cluster.status().jobs), flush=True)
    cluster.close()
    print("closed", flush=True)


if __name__ == "__main__":
    {"start": lambda: start(sys.argv[2], sys.argv[3]), "attach": lambda: attach(sys.argv[2])}.get(
        sys.argv[1], lambda: adapt(sys.argv[2])
    )()
