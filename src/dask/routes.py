"""HTTP routes drover adds to the Dask schedulers it starts.

drover reads and steers a Dask scheduler through these routes alone, so the
scheduler does not need Dask's own `/api/v1`, which has no login and lets
whoever reaches the port retire workers. Every route here wants the token
drover passes in `DROVER_DASK_TOKEN` as `Authorization: Bearer TOKEN`; a
request without it is answered 403 and does nothing.

- `GET /drover/v1/workers`: every worker with its name, address and load
  (tasks assigned to it, keys it holds and their bytes), and each worker's
  busy time so far by name (`busy_seconds`, departed workers included):
  the compute time of its tasks as Dask's own task records say (the
  `startstops` its task stream is drawn from), summed by a scheduler
  plugin installed at the first request (drover asks as the pool starts).
  Dask's own `/json/identity.json` cannot encode worker metrics once tasks
  have run.
- `GET /drover/v1/desired`: Dask's adaptive target.
- `POST /drover/v1/retire` with `{"workers": [ADDRESS, ...]}`: retires them
  with their data moved elsewhere first, and answers the addresses retired.
"""

import hmac
import json
import os

from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.http.utils import RequestHandler

# The secret, read once: the environment is drover's, never a request's.
_TOKEN = os.environ.get("DROVER_DASK_TOKEN", "")
# A retire request names worker addresses only: a few KiB is plenty.
_MAX_BODY = 1 << 20


class _Authenticated(RequestHandler):
    """Refuses every request that does not carry drover's token."""

    def prepare(self):
        presented = self.request.headers.get("Authorization", "")
        expected = "Bearer " + _TOKEN
        if not _TOKEN or not hmac.compare_digest(presented.encode(), expected.encode()):
            self.set_status(403)
            self.finish("drover: this route wants the pool's token\n")

    def answer(self, value):
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(value))


class _BusyTime(SchedulerPlugin):
    """Sums each worker's task compute seconds, by worker name, as tasks
    finish (or fail) there: the figures Dask's task stream shows."""

    name = "drover-busy-time"

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.seconds = {}

    def transition(self, key, start, finish, *args, **kwargs):
        if start != "processing" or finish not in ("memory", "erred"):
            return
        ws = self.scheduler.workers.get(kwargs.get("worker"))
        if ws is None:
            return
        spent = sum(
            max(0.0, s.get("stop", 0) - s.get("start", 0))
            for s in kwargs.get("startstops") or ()
            if s.get("action") == "compute"
        )
        name = str(ws.name)
        self.seconds[name] = self.seconds.get(name, 0.0) + spent


def _busy_time(scheduler):
    """The scheduler's busy-time plugin, installed the first time."""
    plugin = scheduler.plugins.get(_BusyTime.name)
    if plugin is None:
        plugin = _BusyTime(scheduler)
        scheduler.add_plugin(plugin)
    return plugin


class Workers(_Authenticated):
    def get(self):
        busy = _busy_time(self.server)
        workers = [
            {
                "name": str(ws.name),
                "address": ws.address,
                "processing": len(ws.processing),
                "keys": len(ws.has_what),
                "nbytes": ws.nbytes,
            }
            for ws in self.server.workers.values()
        ]
        seconds = {name: round(s, 3) for name, s in busy.seconds.items()}
        self.answer({"workers": workers, "busy_seconds": seconds})


class Desired(_Authenticated):
    def get(self):
        self.answer({"desired_workers": int(self.server.adaptive_target())})


class Retire(_Authenticated):
    async def post(self):
        body = self.request.body
        if len(body) > _MAX_BODY:
            self.set_status(413)
            self.finish("drover: a retire request is at most 1 MiB\n")
            return
        try:
            addresses = json.loads(body)["workers"]
            if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self.set_status(400)
            self.finish('drover: expected {"workers": [ADDRESS, ...]}\n')
            return
        retired = await self.server.retire_workers(workers=addresses)
        self.answer(sorted(retired))


routes = [
    ("/drover/v1/workers", Workers, {}),
    ("/drover/v1/desired", Desired, {}),
    ("/drover/v1/retire", Retire, {}),
]
