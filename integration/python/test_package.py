"""The package itself: what `pip install` put in the venv, and what
importing it costs."""

from __future__ import annotations

import os
import subprocess
import sys

import drover
from conftest import PYTHON


def test_import_does_not_import_dask():
    out = subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys, drover; print('dask' in sys.modules, 'distributed' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]


def test_the_venv_has_the_drover_command_and_the_wheel_carries_the_binary():
    assert os.access(drover.binary(), os.X_OK)
    version = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "drover"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == f"drover {drover.__version__}"
