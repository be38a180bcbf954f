"""drover.SlurmCluster from Python on the local Slurm: command tasks through
`map`, the seed graph, failures, status records, logs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap

import pytest

import drover
from conftest import PYTHON, REPO, open_page, squeue, until

pytestmark = pytest.mark.usefixtures("no_jobs_left")


def cluster(n_workers=0, **settings):
    return drover.SlurmCluster(
        n_workers, **{"cores": 1, "memory": "256MB", "walltime": "00:10:00", **settings}
    )


def test_a_thousand_command_tasks_through_map(workdir):
    with cluster() as c:
        c.scale(2)
        c.wait_for_workers(2, timeout=120)
        tasks = c.map("echo $(( {} * 2 ))", range(1000))
        assert len(tasks) == 1000
        outputs = c.gather(tasks, timeout=300)
        assert [int(o) for o in outputs] == [2 * i for i in range(1000)]
        assert {t.state for t in tasks[:5]} == {"succeeded"}
        # Each worker maps to its Slurm job, state and node.
        status = c.status()
        assert status.registered == 2
        assert {j.state for j in status.jobs} == {"RUNNING"}
        assert all(j.node and j.workers for j in status.jobs)
        # cluster.jobs() is the same list; a job the listing shows has no `end`.
        jobs = c.jobs()
        assert [j.job for j in jobs] == [j.job for j in status.jobs]
        assert all(j.end is None for j in jobs)
        log = c.logs(status.jobs[0].workers[0].name)
        assert "registered" in log
        # The status page, through the one-time URL, lists the jobs.
        page = open_page(c.dashboard_url())
        assert all(f'data-job="{j.job}"' in page for j in status.jobs), page
        assert "1000 succeeded" in page, page


def test_file_access_group_lets_the_group_read_logs_and_outputs(workdir):
    """`file_access="group"`: the log directory, the task output directory
    and a long output's file are the group's to read (0750, 0640), and no
    one else's."""
    logs = workdir / "group-logs"
    with cluster(n_workers=1, log_directory=str(logs), file_access="group") as c:
        c.wait_for_workers(1, timeout=120)
        task = c.submit("head -c 300000 /dev/zero | tr '\\0' x")
        info = task.wait(timeout=120)
        assert info.state == "succeeded", info
        long_output = info.output.stdout_file
        assert long_output, info.output
        assert os.stat(logs).st_mode & 0o777 == 0o750
        assert os.stat(long_output).st_mode & 0o777 == 0o640
        assert os.stat(os.path.dirname(long_output)).st_mode & 0o777 == 0o750


def test_the_seed_graph_sums_to_50_and_the_pool_reports_its_cost(workdir, capsys):
    graph = {"tasks": {}}
    parts = []
    for x in range(1, 6):
        graph["tasks"][f"inc{x}"] = {"command": f"echo $(( {x} + 1 ))"}
        graph["tasks"][f"double{x}"] = {"command": f"echo $(( 2 * {x} ))"}
        graph["tasks"][f"add{x}"] = {"command": f"echo $(( {{{{inc{x}}}}} + {{{{double{x}}}}} ))"}
        parts.append(f"{{{{add{x}}}}}")
    graph["tasks"]["total"] = {"command": "echo $(( " + " + ".join(parts) + " ))"}
    with cluster(n_workers=2) as c:
        results = c.run_graph(graph, timeout=120)
        assert results["total"] == "50"
        # The same graph from the repository's graph file.
        assert c.run_graph(REPO / "examples" / "seed-graph.toml", timeout=120)["total"] == "50"
        # What the pool cost so far: the tasks' own times are its busy time.
        sleeper = c.submit("sleep 2", name="sleeper")
        ran = sleeper.wait(timeout=60).output.millis / 1000
        live = c.report()
        assert isinstance(live, drover.Report) and live.total.workers == 2, live
        assert ran <= live.total.busy_core_seconds < ran + 5, live
    # Closing printed the pool's one line, and the report holds its end.
    assert re.search(
        r"drover: 2 workers, [0-9.]+ core-h allocated, [0-9.]+ busy \([0-9]+ %\)",
        capsys.readouterr().err,
    )
    final = c.report()
    assert final.source == "slurm_accounting" and final.total.jobs == 2, final
    assert final.total.allocated_core_seconds >= final.total.busy_core_seconds > 0, final
    assert 0 <= final.total.idle_fraction < 1 and final.total.energy_joules is None, final
    assert final.total.billing_units > 0 and final.groups == {}, final
    table = final._repr_html_()
    assert "<table>" in table and "<td>total</td>" in table and "not measured" in table, table


def test_a_failed_task_raises_with_its_exit_code_and_stderr(workdir):
    with cluster(n_workers=1) as c:
        failing = c.submit("echo broken >&2; exit 3", name="bad")
        dependent = c.submit(["echo", "never"], after=[failing])
        with pytest.raises(drover.TaskFailed) as e:
            failing.result(timeout=120)
        assert e.value.exit_code == 3 and "broken" in e.value.stderr
        assert "task t" in str(e.value) and "(bad)" in str(e.value)
        with pytest.raises(drover.TaskFailed) as e:
            dependent.result(timeout=60)
        assert e.value.state in ("failed", "cancelled")
        assert c.submit(["echo", "ok"]).result(timeout=60) == "ok\n"


def test_tasks_ask_for_memory_and_one_no_worker_can_hold_is_refused(workdir):
    # Workers of 256 MB: a task asking for 1 GiB could never run.
    with cluster(n_workers=1) as c:
        with pytest.raises(drover.ClusterError, match="no worker could ever run it"):
            c.submit("true", memory="1GiB")
        with pytest.raises(ValueError, match="lots"):
            c.submit("true", memory="lots")
        assert c.submit(["echo", "ok"], memory="100MiB").result(timeout=120) == "ok\n"


def test_a_job_slurm_refuses_fails_the_start_with_slurms_words(workdir):
    # More memory than any node has. Asked for workers at once, the pool
    # asks `sbatch --test-only` as it starts, so the constructor raises and
    # nothing is queued (the no_jobs_left fixture checks squeue).
    with pytest.raises(drover.ClusterError) as e:
        cluster(1, memory="1000GB")
    message = str(e.value)
    assert "sbatch" in message, message
    assert "Requested node configuration is not available" in message, message


def test_a_job_slurm_refuses_later_fails_the_wait_with_slurms_words(workdir):
    # Made with no workers (to look at its job script, say), the cluster
    # starts; its first scale is refused in Slurm's words, nothing queued.
    with cluster(memory="1000GB") as c:
        assert "#SBATCH" in c.job_script()
        c.scale(1)
        with pytest.raises(drover.ClusterError) as e:
            c.wait_for_workers(1, timeout=60)
    message = str(e.value)
    assert "sbatch" in message, message
    assert "Requested node configuration is not available" in message, message


def test_ctrl_c_interrupts_a_wait_and_the_jobs_go(workdir):
    # A driver waiting for a worker that cannot come (its job is held):
    # SIGINT raises KeyboardInterrupt at once, and exiting cancels the job.
    driver = textwrap.dedent(
        """
        import signal, sys, drover
        # As at a terminal: a runner started in the background (a shell
        # without job control) passes SIGINT down ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        c = drover.SlurmCluster(cores=1, memory="256MB", job_extra_directives=["--hold"])
        c.scale(1)
        print("waiting", flush=True)
        try:
            c.wait_for_workers(1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
        """
    )
    p = subprocess.Popen([PYTHON, "-c", driver], stdout=subprocess.PIPE, text=True, cwd=workdir)
    assert p.stdout.readline().strip() == "waiting"
    until("the held job in the queue", lambda: squeue())
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert "interrupted" in out and p.returncode == 7
    until("the held job cancelled", lambda: squeue() == [], timeout=30)


def test_a_pool_with_a_journal_continues_after_its_driver_is_killed(workdir):
    journal = workdir / "pool.journal"
    driver = subprocess.Popen(
        [
            PYTHON,
            "-u",
            "-c",
            textwrap.dedent(
                f"""
                import time
                import drover
                c = drover.SlurmCluster(
                    n_workers=2, cores=1, memory="256MB", walltime="00:10:00",
                    journal={str(journal)!r}, reattach_grace=60,
                )
                c.wait_for_workers(2, timeout=120)
                print("ready", flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        said = []
        for line in driver.stdout:
            said.append(line)
            if line.strip() == "ready":
                break
        else:
            pytest.fail("the driver ended before it was ready:\n" + "".join(said))
        jobs = sorted(squeue("-o", "%i"))
        assert len(jobs) == 2
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # Started again on the journal: the same pool, whatever size is asked.
        with cluster(n_workers=5, journal=str(journal)) as c:
            assert c.restored
            c.wait_for_workers(2, timeout=60)
            status = c.status()
            assert (status.target_workers, status.submitted) == (2, 0)
            assert sorted(squeue("-o", "%i")) == jobs
            assert c.submit("echo again").result(timeout=60).strip() == "again"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    # Closed, its journal is not continued by mistake.
    with pytest.raises(Exception, match="a pool that was closed"):
        cluster(journal=str(journal))


def test_a_pool_with_groups_sends_big_tasks_to_big_workers(workdir):
    groups = {
        "small": {},
        "big": {"queue": "big", "memory": "2GiB", "worker_resources": ["licence=1"]},
    }
    with cluster(groups=groups) as c:
        assert c.groups == ["small", "big"]
        with pytest.raises(ValueError, match="this pool has groups small, big; name one"):
            c.scale(1)
        c.scale(1, group="small")
        c.scale(1, group="big")
        c.wait_for_workers(2, timeout=120)
        partition = "echo $SLURM_JOB_PARTITION"
        assert c.submit(partition, memory="1GiB").result(timeout=120) == "big\n"
        assert c.submit(partition, resources={"licence": 1}).result(timeout=120) == "big\n"
        assert c.submit(partition, group="small").result(timeout=120) == "batch\n"
        with pytest.raises(
            drover.ClusterError, match="group gpu, but the pool's groups are small, big"
        ):
            c.submit("true", group="gpu")
        with pytest.raises(ValueError, match="group"):
            c.submit("true", group="no spaces")
        status = c.status()
        assert [g.group for g in status.groups] == ["small", "big"]


def test_a_pool_over_slurmrestd_runs_tasks_and_says_so(workdir):
    url = os.environ.get("SLURMRESTD_URL")
    token_file = os.environ.get("DROVER_TEST_JWT_FILE")
    if not (url and token_file):
        why = "no slurmrestd: SLURMRESTD_URL and DROVER_TEST_JWT_FILE unset (integration/run-all sets both)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    settings = {"slurm_api": "rest", "slurmrestd": url, "slurm_jwt_file": token_file}
    with cluster(n_workers=2, **settings) as c:
        c.wait_for_workers(2, timeout=120)
        outputs = c.gather(c.map("echo {}", range(10)), timeout=120)
        assert [int(o) for o in outputs] == list(range(10))
        status = c.status()
        # The newest API both sides know: 22.05 serves up to v0.0.38, the
        # newer releases (integration/releases) the data_parser's v0.0.42.
        release = os.environ.get("DROVER_SLURM_RELEASE", "22.05")
        version = "v0.0.38" if release == "22.05" else "v0.0.42"
        assert status.slurm_api.startswith(f"slurmrestd {version} at "), status.slurm_api
        assert status.registered == 2
    with pytest.raises(ValueError, match="slurmrestd"):
        drover.SlurmCluster(slurm_api="rest", slurmrestd="http://10.0.0.5:6820")
