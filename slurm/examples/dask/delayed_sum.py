"""The seed's first Dask program: a small delayed graph summed on the pool.

Run it on a drover Dask pool unchanged:

    drover run --kind dask --python "$VENV/bin/python" --workers 2 --interface ib0 \
        -- "$VENV/bin/python" -u slurm/examples/dask/delayed_sum.py

`Client()` takes no arguments: drover exports DASK_SCHEDULER_ADDRESS, which
Dask's configuration reads.
"""

import dask
from dask.distributed import Client


@dask.delayed
def inc(x):
    return x + 1


@dask.delayed
def double(x):
    return 2 * x


@dask.delayed
def add(x, y):
    return x + y


def main():
    client = Client()
    parts = [add(inc(x), double(x)) for x in range(1, 6)]
    total = dask.delayed(sum)(parts)
    print("total =", total.compute())
    workers = sorted(client.scheduler_info()["workers"])
    print("workers:", " ".join(workers))
    client.close()


if __name__ == "__main__":
    main()
