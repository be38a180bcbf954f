"""HTTP routes drover adds to the Dask schedulers it starts.

`/drover/v1/workers` lists every worker with its name, address and load as
the scheduler sees it: tasks assigned to it (`processing`), keys it holds
and their bytes. drover reads it to tell idle Dask workers from busy ones
when an adaptive pool shrinks. (Dask's own `/json/identity.json` cannot
encode worker metrics once tasks have run.)
"""

import json

from distributed.http.utils import RequestHandler


class Workers(RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
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
        self.write(json.dumps({"workers": workers}))


routes = [("/drover/v1/workers", Workers, {})]
