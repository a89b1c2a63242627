"""Run by tests/test_distributed.py on 2 MPI ranks: a training-like loop of all-reduces where rank 1
fails at step 3 in the way argv[1] names (``kill``: SIGKILL itself; ``raise``: an uncaught
exception; ``stall``: sleeps for a minute, its heartbeat thread still answering). argv[2] is the process group's timeout in seconds. Rank 0 prints each step it finishes."""

import os
import signal
import sys
import time

import numpy as np

import gpuconv.distributed as dist


def main():
    mode, timeout = sys.argv[1], float(sys.argv[2])
    dist.init_process_group(backend="mpi", timeout=timeout)
    rank = dist.get_rank()
    gradient = np.ones(10_000)
    for step in range(50):
        if rank == 1 and step == 3:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "stall":
                time.sleep(60)
            raise ValueError("rank 1 met a bad batch on purpose")
        dist.all_reduce(gradient, op="mean")
        print(f"step {step} done on rank {rank}", flush=True)
    print(f"OK rank {rank} finished", flush=True)


if __name__ == "__main__":
    main()
