"""drover's preload for the Dask workers of its pools (`dask worker --preload`).

Slurm stops a job's processes with SIGTERM: preemption (before its
GraceTime runs out), `scancel`, a node drained for maintenance. Dask's own
`dask worker` then closes at once and the results the worker holds are
lost (Dask computes them again elsewhere). With this preload the worker
retires through Dask first, as `Worker.close_gracefully` does, so its
results move to the workers that stay, then closes. Further SIGTERMs (the
agent's, as it leaves) are ignored meanwhile: the agent, then Slurm's
SIGKILL once its grace is over, still end it should retiring hang; SIGINT
keeps Dask's handling.
"""

import asyncio
import logging
import signal

logger = logging.getLogger("drover.preload")


def dask_setup(worker):
    loop = asyncio.get_running_loop()

    def retire():
        logger.info("SIGTERM: retiring through Dask so that results move first")
        asyncio.ensure_future(worker.close_gracefully(reason="stopped by Slurm (SIGTERM)"))

    def on_term(signum, frame):
        # Once: later ones find the worker retiring already.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        loop.call_soon_threadsafe(retire)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:
        # Not the main thread: signals are not ours to handle here.
        logger.info("not on the main thread: SIGTERM keeps Dask's handling")
