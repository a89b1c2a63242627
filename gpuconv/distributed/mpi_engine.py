"""Collectives through MPI on contiguous NumPy buffers (the numpy and emulated backends; arrays of
the cupy backend are staged through the host by :mod:`.collectives`)."""

from __future__ import annotations

from typing import Any

import numpy as np


class MpiWork:
    """A started all-reduce; :meth:`wait` completes it (bounded by the group's timeout)."""

    def __init__(self, group: Any, request: Any, what: str):
        self._group, self._request, self._what = group, request, what

    def poll(self) -> bool:
        """Lets MPI progress it (MPI moves non-blocking collectives only inside MPI calls); True when done."""
        return self._request.Test()

    def wait(self) -> None:
        self._group.wait(self._request.Test, self._what)


class MpiEngine:
    """Non-blocking MPI collectives, each waited for by the group's watchdog."""

    staging = "host"

    def __init__(self, group: Any):
        self.group = group
        MPI = group.MPI
        self.ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def stage(self, a: Any) -> np.ndarray:
        """``a`` (any backend) as a C-contiguous host buffer: ``a`` itself when it is one, else a copy."""
        from ..backend import to_numpy
        return np.ascontiguousarray(to_numpy(a))

    def start_all_reduce(self, buf: np.ndarray, op: str, what: str = "all_reduce") -> MpiWork:
        MPI = self.group.MPI
        return MpiWork(self.group, self.group.comm.Iallreduce(MPI.IN_PLACE, buf, self.ops[op]), what)

    def all_reduce(self, buf: np.ndarray, op: str) -> None:
        self.start_all_reduce(buf, op).wait()

    def broadcast(self, buf: np.ndarray, src: int) -> None:
        self.group.wait(self.group.comm.Ibcast(buf, root=src).Test, "broadcast")

    def all_gather(self, send: np.ndarray, recv: np.ndarray) -> None:
        self.group.wait(self.group.comm.Iallgather(send, recv).Test, "all_gather")

    def reduce_scatter(self, send: np.ndarray, recv: np.ndarray, counts: list[int], op: str) -> None:
        request = self.group.comm.Ireduce_scatter(send, recv, counts, self.ops[op])
        self.group.wait(request.Test, "reduce_scatter")

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def barrier(self) -> None:
        self.group.wait(self.group.comm.Ibarrier().Test, "barrier")

    def close(self) -> None:
        """Nothing to release (the group frees the communicator)."""

    def abort(self) -> None:
        """Nothing to abort: pending MPI requests die with the process."""
