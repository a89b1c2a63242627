"""Data-parallel communication on proven engines: MPI (mpi4py) and NCCL (``cupy.cuda.nccl``).

    mpiexec -n 2 python train.py          # one process per rank (per GPU on a GPU node)

    import gpuconv.distributed as dist
    dist.init_process_group()             # backend "auto": nccl on the cupy backend, else mpi
    dist.all_reduce(grad, op="mean")      # in place, on every rank
    dist.destroy_process_group()

A rank that dies, raises or stops answering makes the others raise :class:`RankFailedError`
naming it within ``init_process_group(timeout=...)``; after a fault the process exits non-zero.
Install: ``pip install 'gpuconv[distributed]'`` (mpi4py and the mpich wheels).
"""

from .collectives import all_gather, all_gather_object, all_reduce, barrier, broadcast, reduce_scatter, split_sizes
from .errors import CollectiveTimeoutError, DistributedError, RankFailedError
from .group import (
    DEFAULT_TIMEOUT_S,
    destroy_process_group,
    get_backend_name,
    get_local_rank,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
)

__all__ = [
    "CollectiveTimeoutError", "DEFAULT_TIMEOUT_S", "DistributedError", "RankFailedError", "all_gather", "all_gather_object",
    "all_reduce", "barrier", "broadcast", "destroy_process_group", "get_backend_name", "get_local_rank",
    "get_rank", "get_world_size", "init_process_group", "is_initialized", "reduce_scatter", "split_sizes",
]
