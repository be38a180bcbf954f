"""Where the ``drover`` executable is: in the installed package
(``drover/bin/drover``, carried by the wheel), unless ``DROVER_BIN`` names
another. Worker jobs run it from there, so the package must sit where the
compute nodes see it (a venv on the shared filesystem)."""

import os
from pathlib import Path


def binary() -> str:
    """The path of the ``drover`` executable jobs run."""
    named = os.environ.get("DROVER_BIN")
    if named:
        return named
    packaged = Path(__file__).resolve().parent / "bin" / "drover"
    if packaged.is_file():
        return str(packaged)
    raise FileNotFoundError(
        f"the drover executable is not at {packaged}: install the package with "
        "`pip install <path to the drover repository>` (the wheel carries it), "
        "or set DROVER_BIN to a drover executable"
    )
