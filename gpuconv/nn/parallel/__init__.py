"""Parallel training wrappers: :class:`DistributedDataParallel` (one process per rank, see
``gpuconv.distributed``)."""

from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
