"""drover.dask.SLURMCluster on the local Slurm, beyond dask-jobqueue's own
tests: the launcher pattern (a dask-jobqueue driver with its import
changed, run inside a Slurm job), a driver killed with SIGKILL, an
interpreter that exits without close(), scaling by cores and memory,
logs, and drover's agent as the nanny."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import textwrap
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (
    PYTHON,
    REPO,
    chromium_dom,
    job_states,
    squeue,
    until,
)

pytestmark = pytest.mark.usefixtures("no_jobs_left")

VENV = os.path.dirname(os.path.dirname(PYTHON))


@pytest.fixture
def start_driver(workdir):
    """Starts a Python driver in its own process, its output on a pipe;
    kills whatever is left of it when the test ends."""
    started = []

    def start(body: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [PYTHON, "-u", "-c", textwrap.dedent(body)],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def read_until(p: subprocess.Popen, marker: str) -> list[str]:
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.strip() == marker:
            return lines
    pytest.fail(f"the driver ended before printing {marker!r}:\n{''.join(lines)}")


def test_the_launcher_pattern_runs_a_dask_jobqueue_driver_in_a_job(workdir):
    launcher = REPO / "slurm/examples/dask/launcher.sh"
    driver = REPO / "slurm/examples/dask/jobqueue_driver.py"
    started = time.time()
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--wait",
            f"--chdir={workdir}",
            str(launcher),
            VENV,
            str(driver),
            "2",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    job = out.stdout.strip().split(";")[0]
    log = (workdir / f"slurm-{job}.out").read_text()
    assert out.returncode == 0, log + out.stderr
    # The driver's result, then drover's line on what the pool cost (on
    # stderr, which the job's log holds too).
    lines = log.strip().splitlines()
    assert "50" in lines, log
    summary = [i for i, line in enumerate(lines) if line.startswith("drover: 2 workers, ")]
    assert summary and summary[-1] > lines.index("50"), log
    assert (workdir / "seed-graph.svg").read_text().lstrip().startswith("<?xml")
    # Its worker jobs ended COMPLETED; none is left.
    workers = job_states("dask-worker-", after=int(job))
    assert len(workers) >= 2, workers
    assert set(workers.values()) == {"COMPLETED"}, workers
    assert squeue() == []
    assert time.time() - started < 300


def test_a_driver_killed_with_sigkill_leaves_no_job(workdir, start_driver):
    p = start_driver(
        """
        from drover.dask import SLURMCluster
        from dask.distributed import Client
        cluster = SLURMCluster(cores=1, memory="1GB", walltime="00:10:00", death_timeout=20)
        cluster.scale(2)
        client = Client(cluster)
        client.wait_for_workers(2, timeout=120)
        print("ready", flush=True)
        import time; time.sleep(600)
        """,
    )
    read_until(p, "ready")
    assert len(squeue()) == 2
    p.send_signal(signal.SIGKILL)
    p.wait()
    # Within the death timeout: drover's watcher cancels the jobs at once.
    until("every job gone after SIGKILL", lambda: squeue() == [], timeout=20)
    # The Dask scheduler went with its driver.
    until(
        "no Dask scheduler of the driver left",
        lambda: (
            subprocess.run(["pgrep", "-f", f"{workdir}.*dask-scheduler"], check=False).returncode
            == 1
        ),
        timeout=10,
    )


@pytest.mark.parametrize("when", ["after_scale", "with_workers_up", "os_exit"])
def test_an_interpreter_that_exits_without_close_leaves_no_job(start_driver, when):
    wait = "client.wait_for_workers(1, timeout=120)" if when != "after_scale" else ""
    end = "import os; os._exit(0)" if when == "os_exit" else ""
    p = start_driver(
        f"""
        from drover.dask import SLURMCluster
        from dask.distributed import Client
        cluster = SLURMCluster(cores=1, memory="1GB", walltime="00:10:00")
        cluster.scale(1)
        client = Client(cluster)
        {wait}
        print("exiting", flush=True)
        {end}
        """,
    )
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    until("every job gone after exit", lambda: squeue() == [], timeout=20)


def test_scale_by_cores_and_memory_and_read_logs(workdir):
    from dask.distributed import Client

    from drover.dask import SLURMCluster

    with SLURMCluster(cores=2, processes=2, memory="2GB", walltime="00:10:00") as cluster:
        cluster.scale(cores=3)  # 2 jobs of 2 cores
        with Client(cluster) as client:
            client.wait_for_workers(4, timeout=120)
            names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
            prefix = cluster.name
            assert names == [f"{prefix}-{i}-{p}" for i in range(2) for p in range(2)], names
            # Dask's own record of its tasks' compute time is the pool's
            # busy time: 8 tasks of 0.5 s.
            client.gather(client.map(time.sleep, [0.5] * 8, pure=False))
            until(
                "the pool to count Dask's busy time",
                lambda: 4.0 <= cluster.report().total.busy_core_seconds < 8.0,
                timeout=30,
            )
            assert cluster.report().total.workers == 4
            cluster.scale(memory="1GB")  # 1 job
            until("one job left", lambda: len(squeue()) == 1, timeout=60)
            logs = cluster.get_logs()
            slurm_logs = [k for k in logs if k.startswith("slurm-")]
            assert slurm_logs and "registered" in str(logs[slurm_logs[0]])
            assert re.search(r"#SBATCH -J dask-worker-\w+", cluster.job_header)
            # In a browser (headless Chromium, through the one-time login):
            # drover's status page links to Dask's own dashboard; the
            # browser follows the link to Dask's status page (bokeh is
            # installed), and from its navigation to Dask's list of
            # workers, which names this pool's.
            names = [w["name"] for w in client.scheduler_info()["workers"].values()]
            page = chromium_dom(cluster.drover_dashboard_url())
            assert 'data-job="' in page, page
            link = html.unescape(re.search(r'id="dask-dashboard" href="([^"]+)"', page)[1])
            status = chromium_dom(link, budget_ms=10_000)
            assert "<title>Dask Diagnostic UI</title>" in status, status[:2000]
            info = re.search(r'<a href="([^"]*)">Info</a>', status)
            assert info, status[:2000]
            # Dask's Info tab leads on to its list of workers.
            workers = chromium_dom(urllib.parse.urljoin(link, html.unescape(info[1])))
            assert names and all(name in workers for name in names), (names, workers[:2000])


def test_the_agent_restarts_a_dask_worker_that_dies(workdir):
    from dask.distributed import Client

    from drover.dask import SLURMCluster

    with SLURMCluster(cores=1, memory="1GB", walltime="00:10:00") as cluster:
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            (before,) = client.scheduler_info()["workers"]
            # One interpreter per worker: its parent is drover's agent, not
            # a Dask nanny. (The nodes share this machine's process ids.)
            (pid,) = client.run(lambda: __import__("os").getpid()).values()
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = stat.rsplit(")", 1)[1].split()[1]
            assert "drover" in Path(f"/proc/{parent}/cmdline").read_text()
            os.kill(pid, signal.SIGKILL)  # as the OOM killer would
            until(
                "the worker back, restarted in its job",
                lambda: set(client.scheduler_info()["workers"]) - {before},
                timeout=60,
            )
            assert len(squeue()) == 1
            assert client.submit(lambda x: x * 2, 21).result(timeout=60) == 42


def test_a_dask_pool_with_groups_sends_gpu_tasks_to_the_gpu_group(workdir):
    import os as worker_os

    from dask.distributed import Client

    from drover.dask import SLURMCluster

    def where() -> tuple[str, str]:
        env = worker_os.environ
        return env.get("SLURM_JOB_PARTITION", ""), env.get("CUDA_VISIBLE_DEVICES", "")

    # A list of specs, each naming its group (a mapping works too).
    groups = [{"name": "cpu", "queue": "small"}, {"name": "gpu", "queue": "big", "gres": "gpu:1"}]
    with SLURMCluster(cores=1, memory="1GB", walltime="00:10:00", groups=groups) as cluster:
        with pytest.raises(ValueError, match="one of this cluster's groups"):
            cluster.scale(1)
        cluster.scale(1, group="cpu")
        cluster.scale(1, group="gpu")
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
            assert len(set(names)) == 2 and any("-gpu-" in n for n in names), names
            on_gpu = [client.submit(where, resources={"GPU": 1}, pure=False) for _ in range(4)]
            assert {f.result(timeout=60) for f in on_gpu} == {("big", "0")}
            anywhere = client.submit(where, pure=False).result(timeout=60)
            assert anywhere[0] in ("small", "big")
