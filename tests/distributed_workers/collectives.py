"""Run by tests/test_distributed.py on 2+ MPI ranks: every collective, op, dtype and layout against
NumPy's result on the inputs of all ranks (each rank can draw every rank's input: rank r's comes
from the generator seeded (case, r)). Prints ``OK <checks>`` per rank; any mismatch raises.

argv[1]: the process group's backend (``auto``: expected to resolve to ``mpi`` off the cupy
backend); ``nccl`` also runs the collectives on CuPy arrays."""

import sys

import numpy as np

import gpuconv
import gpuconv.distributed as dist
from gpuconv.data import DistributedSampler

DTYPES = ("float32", "float64", "int8", "uint8", "int32", "int64")
SHAPES = [(7,), (5, 3), (3, 4, 2), (1, 2), ()]  # 7, 5 and 1 rows do not divide by 2 (nor 3) ranks


def draw(case, rank, shape, dtype):
    rng = np.random.default_rng([case, rank])
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    # Small values, so that a sum over the ranks does not overflow the dtype.
    return rng.integers(max(info.min, -20), min(info.max, 20) // 4, size=shape, endpoint=True).astype(dtype)


def layouts(a, on_gpu):
    """``a`` contiguous, and as a strided view of a bigger array (non-contiguous) with the same values;
    on the GPU also as CuPy arrays."""
    if on_gpu:
        import cupy
        for name, host in layouts(a, False):
            device = cupy.zeros(host.shape[:-1] + (2 * host.shape[-1],), dtype=host.dtype)[..., ::2] \
                if name == "strided" else cupy.empty_like(cupy.asarray(host))
            device[...] = cupy.asarray(host)
            yield f"cupy {name}", device
    yield "contiguous", a.copy()
    if a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        view = big[..., ::2]
        view[...] = a
        yield "strided", view
        if a.ndim >= 2:
            yield "transposed", np.ascontiguousarray(a.T).T.copy(order="F")


def expected_reduce(stack, op):
    if op == "sum":
        return stack.sum(axis=0, dtype=stack.dtype)
    if op == "mean":
        return (stack.sum(axis=0, dtype=stack.dtype) / stack.dtype.type(len(stack))).astype(stack.dtype)
    return stack.max(axis=0) if op == "max" else stack.min(axis=0)


def assert_equal_or_close(actual, expected, what, terms):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (what, actual.shape, expected.shape,
                                                                               actual.dtype, expected.dtype)
    if actual.dtype.kind == "f":
        # A sum of `terms` values in another order: each rounding is at most eps of the partial sum.
        bound = terms * np.finfo(actual.dtype).eps * np.abs(expected).max(initial=0) * 4 + 1e-300
        assert np.abs(actual - expected).max(initial=0) <= bound, (what, actual, expected)
    else:
        assert np.array_equal(actual, expected), (what, actual, expected)


def host(a):
    return gpuconv.to_numpy(a)


def main():
    backend = sys.argv[1]
    dist.init_process_group(backend=backend, timeout=60)
    rank, world = dist.get_rank(), dist.get_world_size()
    on_gpu = backend == "nccl"
    assert dist.is_initialized() and dist.get_backend_name() == ("nccl" if on_gpu else "mpi")
    assert dist.get_local_rank() == rank  # one node: the shared-memory split is the whole job
    checks = 0
    case = 0
    for dtype in DTYPES:
        for shape in SHAPES:
            case += 1
            inputs = np.stack([draw(case, r, shape, dtype) for r in range(world)])
            mine = inputs[rank, ...]
            for op in ("sum", "mean", "max", "min"):
                if op == "mean" and np.dtype(dtype).kind != "f":
                    continue
                for layout, x in layouts(mine, on_gpu):
                    result = dist.all_reduce(x, op=op)
                    assert result is x
                    assert_equal_or_close(host(x), expected_reduce(inputs, op), f"all_reduce {op} {dtype} {shape} {layout}",
                                          world)
                    checks += 1
            for layout, x in layouts(mine, on_gpu):
                gathered = dist.all_gather(x)
                assert type(gathered) is type(x) and np.array_equal(host(gathered), inputs), ("all_gather", dtype,
                                                                                              shape, layout)
                checks += 1
            for layout, x in layouts(mine, on_gpu):
                src = world - 1
                dist.broadcast(x, src=src)
                assert np.array_equal(host(x), inputs[src]), ("broadcast", dtype, shape, layout)
                checks += 1
            if shape:
                for op in ("sum", "mean", "max", "min"):
                    if op == "mean" and np.dtype(dtype).kind != "f":
                        continue
                    for layout, x in layouts(mine, on_gpu):
                        block = dist.reduce_scatter(x, op=op)
                        want = np.array_split(expected_reduce(inputs, op), world)[rank]
                        assert type(block) is type(x)
                        assert_equal_or_close(host(block), want, f"reduce_scatter {op} {dtype} {shape} {layout}", world)
                        checks += 1

    # Disagreeing ranks: a clear error on every rank naming each rank's arguments; the group stays usable.
    if world > 1:
        try:
            dist.all_reduce(np.zeros(3 + rank))
        except ValueError as error:
            assert "rank 0: float64 (3,)" in str(error) and "rank 1: float64 (4,)" in str(error), error
        else:
            raise AssertionError("all_reduce accepted different shapes on the ranks")
        try:
            dist.all_reduce(np.zeros(3), op="max" if rank else "min")
        except ValueError as error:
            assert "op='max'" in str(error) and "op='min'" in str(error), error
        else:
            raise AssertionError("all_reduce accepted different ops on the ranks")
        checks += 2

    # Python objects of different sizes per rank.
    objects = dist.all_gather_object({"rank": rank, "names": ["w"] * (rank + 1)})
    assert objects == [{"rank": r, "names": ["w"] * (r + 1)} for r in range(world)], objects
    checks += 1

    # Tensors (once gpuconv has them): the collective works on their native array in place.
    if hasattr(gpuconv, "Tensor"):
        t = gpuconv.Tensor(np.full(4, float(rank + 1)))
        dist.all_reduce(t, op="sum")
        assert np.array_equal(np.asarray(t.data), np.full(4, world * (world + 1) / 2))
        checks += 1

    # DistributedSampler takes num_replicas and rank from the group.
    sampler = DistributedSampler(list(range(11)), seed=3)
    assert (sampler.num_replicas, sampler.rank) == (world, rank)
    shares = dist.all_gather(np.array(list(sampler), dtype=np.int64))
    assert sorted(set(shares.ravel().tolist())) == list(range(11)), shares
    checks += 1

    dist.barrier()
    dist.destroy_process_group()
    assert not dist.is_initialized()
    print(f"OK {checks} checks on rank {rank}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
