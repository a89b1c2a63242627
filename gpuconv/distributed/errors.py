"""Errors of ``gpuconv.distributed``: every one names the rank it is about."""

from __future__ import annotations

INSTALL_LINE = "pip install 'gpuconv[distributed]'  (or: pip install mpi4py mpich)"


class DistributedError(RuntimeError):
    """A process group could not be used (not initialized, broken, or misused)."""


class RankFailedError(DistributedError):
    """Another rank of the job died, raised, left or stopped answering.

    Attributes:
        rank: the rank that failed.
    """

    def __init__(self, rank: int, message: str):
        super().__init__(message)
        self.rank = rank


class CollectiveTimeoutError(DistributedError):
    """A collective did not complete within the process group's timeout although every peer
    still answers (the ranks called different collectives, or one is stuck in other work)."""
