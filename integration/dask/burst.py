"""A burst of Dask work for an adaptive pool: N tasks of S seconds each,
submitted at once through an unchanged Client(); prints their sum and how
many workers the pool had at most while they ran."""

import sys
import time

from dask.distributed import Client, as_completed


def slow_square(i, seconds):
    time.sleep(seconds)
    return i * i


def main():
    n, seconds = int(sys.argv[1]), float(sys.argv[2])
    client = Client()
    futures = client.map(slow_square, range(n), seconds=seconds, pure=False)
    most = 0
    total = 0
    for future in as_completed(futures):
        total += future.result()
        most = max(most, len(client.scheduler_info()["workers"]))
    print(f"sum = {total}; at most {most} workers", flush=True)
    client.close()


if __name__ == "__main__":
    main()
