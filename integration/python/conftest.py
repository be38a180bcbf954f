"""Shared fixtures of drover's Python tests: the local Slurm (never skipped
under CI=true), a working directory per test, and the check that a test
leaves no job behind."""

from __future__ import annotations

import http.cookiejar
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

LOCAL_SLURM_CONF = "/var/lib/drover-slurm/slurm.conf"
REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

os.environ.setdefault("SLURM_CONF", LOCAL_SLURM_CONF)
# A user's own drover config must not change what the tests run.
os.environ["DROVER_USER_CONFIG"] = "/dev/null"
os.environ.setdefault("DROVER_POLL_INTERVAL", "0.5")


def squeue(*args: str) -> list[str]:
    """The jobs in the queue, one line each."""
    out = subprocess.run(
        ["squeue", "-h", *args], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.splitlines()


def until(what: str, check, timeout: float = 60.0, every: float = 0.2):
    """Waits for `check()` to be truthy and returns it; fails saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(every)


def job_states(name_prefix: str, after: int = 0) -> dict[str, str]:
    """Every job Slurm still knows (ended ones too, for a few minutes) whose
    name starts with `name_prefix` and whose id is above `after`: job id ->
    state."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o"], check=False, capture_output=True, text=True, timeout=30
    ).stdout
    states = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("JobName", "").startswith(name_prefix) and int(fields["JobId"]) > after:
            states[fields["JobId"]] = fields.get("JobState", "")
    return states


@pytest.fixture(scope="session")
def slurm():
    """The local Slurm; a test that needs it fails under CI=true when it
    does not answer, and is skipped otherwise."""
    try:
        ok = (
            subprocess.run(["sinfo", "-h"], check=False, capture_output=True, timeout=10).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        why = (
            f"no Slurm answers with SLURM_CONF={os.environ['SLURM_CONF']} (slurm/local-cluster up)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; under CI=true integration tests never skip")
        pytest.skip(why)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory of the test's own: drover's logs land in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_jobs_left(slurm):
    """The queue is empty before the test; it must be empty after it."""
    assert squeue() == [], f"jobs in the queue before the test: {squeue()}"
    yield
    until("every job of the test gone from the queue", lambda: squeue() == [], timeout=30)


def unchecked_tls() -> ssl.SSLContext:
    """TLS without checking the certificate: the pool's own, self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def open_page(url: str) -> str:
    """The page a login URL leads to, as a browser gets it (the session
    cookie kept across the redirect; the cluster's own certificate taken)."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=unchecked_tls()),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )
    with opener.open(url, timeout=30) as r:
        return r.read().decode()


def chromium_dom(url: str, budget_ms: int = 5000) -> str:
    """The DOM headless Chromium (Debian's, `integration/browser/install`)
    renders at `url` after `budget_ms` of the page's own time, with a
    profile of its own. The pool's certificate is its own, so it is not
    checked. A missing browser fails under CI=true and skips otherwise."""
    import shutil
    import tempfile

    browser = shutil.which("chromium")
    if browser is None:
        why = "no chromium on PATH (install it with integration/browser/install)"
        if os.environ.get("CI") == "true":
            pytest.fail(why + "; under CI=true integration tests never skip")
        pytest.skip(why)
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--ignore-certificate-errors",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
    return out.stdout
