"""Holds results on a Dask pool while the test scales it down, then checks
that every result is still there and none was computed twice.

Prints `held N results on K workers`, waits for a line on stdin, then
prints `ok M of N on K workers`. Every computation appends its index to
the file named by $CALLS, so a recomputed (lost) result shows up there.
"""

import os
import sys

import numpy as np
from dask.distributed import Client, wait

N = 40
SIZE = 250_000  # 2 MB of float64 per result


def block(i, calls):
    with open(calls, "a") as f:
        f.write(f"{i}\n")
    return np.full(SIZE, i, dtype="float64")


def holders(client, futures):
    return {w for ws in client.who_has(futures).values() for w in ws}


def main():
    calls = os.environ["CALLS"]
    client = Client()
    futures = client.map(block, range(N), calls=calls, pure=False)
    wait(futures)
    print(f"held {N} results on {len(holders(client, futures))} workers", flush=True)
    sys.stdin.readline()
    results = client.gather(futures)
    ok = sum(1 for i, r in enumerate(results) if r.shape == (SIZE,) and (r == i).all())
    print(f"ok {ok} of {N} on {len(holders(client, futures))} workers", flush=True)
    client.close()


if __name__ == "__main__":
    main()
