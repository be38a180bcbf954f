"""The ``drover`` command of the venv: the packaged executable, run as is."""

import os
import sys

from ._binary import binary


def main() -> None:
    path = binary()
    os.execv(path, [path, *sys.argv[1:]])
