"""Python's pools over ssh= on the local Slurm: each driver runs on the
local Slurm's laptop (`slurm/local-cluster laptop`), which reaches only the
login node's sshd and has no Slurm of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import REPO, squeue, until

LAPTOP = [str(REPO / "slurm" / "local-cluster"), "laptop", "--", sys.executable, "-u"]


def on_laptop(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LAPTOP, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_seeds_dask_program_computes_50_over_ssh(workdir, no_jobs_left):
    done = on_laptop(str(REPO / "integration" / "dask" / "over_ssh.py"), str(workdir))
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "total = 50" in said, said
    # Computed by the pool's Dask workers on the nodes (TLS, their ib0).
    assert "workers: tls://10.77.0." in said, said
    # get_logs(): the workers' logs, read through the scheduler.
    logs = next(line for line in said.splitlines() if line.startswith("logs:"))
    assert int(logs.split()[1]) >= 2, said
    assert "closed" in said, said


def test_a_native_pool_is_attached_again_after_its_driver_was_killed(workdir, no_jobs_left):
    name = f"py-ssh-{os.getpid()}"
    script = str(REPO / "integration" / "python" / "ssh_driver.py")
    first = subprocess.Popen(
        [*LAPTOP, script, "start", name, str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        for line in first.stdout:
            lines.append(line)
            if line.startswith("ready"):
                break
        assert lines and lines[-1].startswith("ready 2"), "".join(lines)
        assert "task: from-a-node" in "".join(lines), "".join(lines)
    finally:
        # The laptop's driver and its ssh connection die at once.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert len(squeue()) == 2, squeue()
    done = on_laptop(script, "attach", name)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "attached 2" in said, said
    assert "log bytes:" in said and "log bytes: 0" not in said, said
    assert "closed" in said, said
    until("the pool's jobs gone", lambda: squeue() == [], timeout=30)


def test_an_adaptive_pool_over_ssh_grows_for_its_tasks(workdir, no_jobs_left):
    script = str(REPO / "integration" / "python" / "ssh_driver.py")
    done = on_laptop(script, "adapt", str(workdir))
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "results: ['done', 'done', 'done', 'done']" in said, said
    # From 0 workers, adapt() submitted jobs for the tasks (at most 2).
    jobs = next(line for line in said.splitlines() if line.startswith("jobs:"))
    assert 1 <= int(jobs.split()[1]) <= 2, said
    assert "closed" in said, said


def test_a_wrong_host_and_bad_settings_are_value_errors_with_nothing_submitted(slurm, workdir):
    code = """
import drover
from drover._binary import binary
for kwargs in ({"ssh": "nosuchhost"}, {"ssh": "login", "memory": "12XB"}, {"ssh": "login"}):
    try:
        drover.SlurmCluster(1, cores=1, **kwargs)
    except ValueError as e:
        print("ValueError:", e)
try:
    drover.SlurmCluster.attach(ssh="login", name="no-such-pool", remote_drover=binary())
except ValueError as e:
    print("ValueError:", e)
"""
    before = squeue()
    done = on_laptop("-c", code)
    said = done.stdout + done.stderr
    assert "ValueError: cannot reach nosuchhost over ssh" in said, said
    assert "ValueError: invalid value `12XB` for memory" in said, said
    # Without remote_drover=, drover is looked for on the login node's PATH.
    assert "ValueError: no drover on login: `drover` cannot be run there" in said, said
    assert "ValueError: no pool named no-such-pool on login" in said, said
    assert squeue() == before
