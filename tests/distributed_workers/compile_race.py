"""Run by tests/test_distributed.py on 2 MPI ranks with an empty kernel cache: both ranks compile the
same kernel files for the emulated backend at once (as every rank of a node does on first use), then
use them. Prints ``OK`` per rank."""

import numpy as np

import gpuconv
import gpuconv.distributed as dist


def main():
    dist.init_process_group(backend="mpi", timeout=600)
    rank = dist.get_rank()
    be = gpuconv.use("emulated")
    dist.barrier()  # start compiling together
    for name in ("conv_epilogue.cu", "reduce.cu"):
        be.module(name)
    dist.barrier()
    # Both ranks run a kernel of the shared cache (reduce.cu's channel sum) and get NumPy's result.
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 5))
    summed = be.sum_except_channel(x)
    np.testing.assert_allclose(summed, x.sum(axis=(0, 2, 3)), rtol=1e-12)
    everyone = dist.all_gather(summed)
    assert np.array_equal(everyone[0], everyone[1])
    dist.destroy_process_group()
    print(f"OK rank {rank}", flush=True)


if __name__ == "__main__":
    main()
