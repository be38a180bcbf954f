"""Bad input from Python: each argument of drover.dask.SLURMCluster (and of
drover.SlurmCluster) with a bad value is a ValueError naming it, in the
words of the drover CLI's error; a wrong type or an unknown argument is a
TypeError naming it; and nothing is submitted or started."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import drover
import drover.dask
from conftest import squeue

# argument, bad value, what the message must say (beyond naming it)
VALUE_ERRORS = [
    ("cores", 0, "at least 1"),
    ("memory", "lots", "accepted"),
    ("processes", 0, "at least 1"),
    ("walltime", "25:99:00", "minutes must be below 60"),
    ("walltime", "soon", "accepted"),
    ("queue", "two words", "whitespace"),
    ("account", "-A", "starts with `-`"),
    ("interface", "ib0/1", "interface name"),
    ("job_name", "two words", "whitespace"),
    ("job_extra_directives", ["qos=debug"], "not an option starting with `-`"),
    ("job_directives_skip", ["-J"], "cannot be left out"),
    ("job_script_prologue", ["echo \x07"], "control character"),
    ("job_script_epilogue", ["echo \x07"], "control character"),
    ("log_directory", "with space/logs", "whitespace"),
    ("local_directory", "with space", "whitespace"),
    ("shebang", "bash", "does not start with `#!`"),
    ("python", "my python", "whitespace"),
    ("worker_extra_args", ["--x\n"], "control character"),
    ("death_timeout", "soon", "accepted"),
    ("job_cpu", 0, "at least 1"),
    ("job_mem", "1 lots", "not a unit of memory"),
    ("nanny", "maybe", "accepted"),
    ("worker_command", "not a module!", "not a Python module name"),
]

TYPE_ERRORS = [
    ("cores", "four"),
    ("processes", 1.5),
    ("job_cpu", "2"),
    ("job_extra_directives", "--qos=debug"),
    ("scheduler_options", {"no_such_option": 1}),
    ("walltime", 1.5),
]


def descends_from_us(pid: int) -> bool:
    """Whether process `pid` was started by this test process (at any depth)."""
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # The parent's pid is the second field after the command's ")".
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def dask_schedulers() -> int:
    """Dask schedulers this test process started: other suites running
    beside it (CI's release lanes) start and end their own."""
    out = subprocess.run(
        ["pgrep", "-f", "distributed.cli.dask_scheduler"],
        check=False,
        capture_output=True,
        text=True,
    )
    pids = [int(p) for p in out.stdout.split()]
    return sum(descends_from_us(p) for p in pids)


@pytest.fixture
def nothing_starts(slurm, workdir):
    before = dask_schedulers()
    assert squeue() == []
    yield
    assert squeue() == [], "a bad argument submitted a job"
    assert dask_schedulers() == before, "a bad argument started a Dask scheduler"


def settings(**overrides):
    base = {"cores": 2, "memory": "2GB", "walltime": "00:10:00"}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("name", "value", "words"), VALUE_ERRORS)
@pytest.mark.usefixtures("nothing_starts")
def test_a_bad_value_is_a_value_error_naming_the_argument(name, value, words):
    with pytest.raises(ValueError) as e:
        drover.dask.SLURMCluster(**settings(**{name: value}))
    message = str(e.value)
    assert name in message and words in message, message


@pytest.mark.parametrize(("name", "value"), TYPE_ERRORS)
@pytest.mark.usefixtures("nothing_starts")
def test_a_wrong_type_is_a_type_error_naming_the_argument(name, value):
    with pytest.raises(TypeError) as e:
        drover.dask.SLURMCluster(**settings(**{name: value}))
    assert name in str(e.value), str(e.value)


@pytest.mark.usefixtures("nothing_starts")
def test_unknown_arguments_and_misplaced_ones():
    with pytest.raises(TypeError, match="'corez'"):
        drover.dask.SLURMCluster(**settings(corez=2))
    with pytest.raises(ValueError, match="needs the cores and the memory"):
        drover.dask.SLURMCluster(cores=2)
    with pytest.raises(ValueError, match="scheduler_options"):
        drover.dask.SLURMCluster(**settings(dashboard_address=":9999"))
    with pytest.raises(ValueError, match="processes = 4 needs at least as many cores"):
        drover.dask.SLURMCluster(**settings(cores=2, processes=4))
    with pytest.raises(TypeError, match="'corez'"):
        drover.SlurmCluster(corez=2)
    with pytest.raises(ValueError, match="for walltime"):
        drover.SlurmCluster(walltime="25:99:00")


@pytest.mark.usefixtures("nothing_starts")
def test_file_access_takes_private_or_group():
    with pytest.raises(ValueError) as e:
        drover.SlurmCluster(file_access="world")
    message = str(e.value)
    assert "file_access" in message and "private" in message and "group" in message, message


@pytest.mark.usefixtures("nothing_starts")
def test_python_says_what_the_cli_says():
    """The same bad values, given to `drover job-script`, fail with the
    same words (each names the setting as its caller spells it)."""
    for name, value in [("walltime", "25:99:00"), ("queue", "two words"), ("job_cpu", 0)]:
        with pytest.raises(ValueError) as e:
            drover.SlurmCluster(**{name: value})
        flag = "--" + name.replace("_", "-")
        cli = subprocess.run(
            [drover.binary(), "job-script", flag, str(value)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert cli.returncode == 2, cli.stderr
        # What is wrong and the accepted forms, word for word.
        words = str(e.value).split(f"for {name}: ", 1)[1]
        assert words in cli.stderr, (words, cli.stderr)


@pytest.mark.usefixtures("nothing_starts")
def test_native_task_arguments():
    with pytest.raises(TypeError, match="command"):
        drover.SlurmCluster.submit(object.__new__(drover.SlurmCluster), 42)
    with pytest.raises(ValueError, match="refers to `nowhere`"):
        drover._drover.graph_tasks({"tasks": {"a": {"command": "echo {{nowhere}}"}}})
    with pytest.raises(ValueError, match="cycle"):
        drover._drover.graph_tasks(
            {"tasks": {"a": {"command": "echo {{b}}"}, "b": {"command": "echo {{a}}"}}}
        )


@pytest.mark.usefixtures("nothing_starts")
def test_bad_groups_are_refused_naming_the_group():
    with pytest.raises(TypeError, match="groups"):
        drover.SlurmCluster(groups=["small"])
    with pytest.raises(ValueError, match="two groups are named 'a'"):
        drover.SlurmCluster(groups=[{"name": "a"}, {"name": "a", "cores": 2}])
    with pytest.raises(TypeError, match="'poll_interval' is a pool setting"):
        drover.SlurmCluster(groups={"small": {"poll_interval": 1}})
    with pytest.raises(ValueError, match=r"groups\[\"big\"\].*walltime"):
        drover.SlurmCluster(groups={"big": {"walltime": "25:99:00"}})
    with pytest.raises(ValueError, match="two groups have this name|not a group name"):
        drover.SlurmCluster(groups={"no spaces": {}})
