"""pytest settings for dask-jobqueue's own ``test_slurm.py``, run against
``drover.dask.SLURMCluster`` (see ``run-dask-jobqueue-tests``).

dask-jobqueue's test suite expects from its conftest: the ``-E NAME``
option, which runs tests marked ``@pytest.mark.env(NAME)`` only for that
environment, and Dask's ``loop`` fixture. These are drover's own
equivalents; the test file itself is the published one, its import
changed."""

# First: Dask's test utilities keep the configuration as it is when they
# are imported and restore it before each test; drover.dask's import
# registers the `jobqueue.slurm` defaults, as dask-jobqueue's does.
import drover.dask  # noqa: F401, I001
import pytest
from distributed.utils_test import cleanup, loop, loop_in_thread  # noqa: F401 - fixtures


def pytest_addoption(parser):
    parser.addoption(
        "-E", action="store", metavar="NAME", help="run the tests marked for environment NAME"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "env(name): the test needs the environment NAME")


def pytest_runtest_setup(item):
    wanted = [mark.args[0] for mark in item.iter_markers(name="env")]
    if wanted and item.config.getoption("-E") not in wanted:
        pytest.skip(f"needs -E {wanted[0]}")
