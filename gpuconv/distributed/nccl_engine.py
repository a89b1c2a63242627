"""Collectives through NCCL (``cupy.cuda.nccl``) on contiguous CuPy buffers, one GPU per process.

Rank 0 makes the NCCL unique id and MPI broadcasts it; each rank binds the GPU
``local_rank % device_count``. Collectives run on a dedicated stream that first waits for the
current stream (so the inputs are ready); completion is polled through an event, so a dead peer
is caught by the watchdog and the communicator is aborted rather than waited on forever.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# NCCL's type codes (nccl.h), for the dtypes gpuconv's collectives accept.
_NCCL_TYPES = {"int8": 0, "uint8": 1, "int32": 2, "int64": 4, "float32": 7, "float64": 8}
_NCCL_OPS = {"sum": 0, "max": 2, "min": 3}
UNIQUE_ID_BYTES = 128


def nccl_unavailable_reason() -> str | None:
    """Why this process cannot run NCCL collectives, or None when it can."""
    from ..backend import unavailable_reason
    reason = unavailable_reason("cupy")
    if reason is not None:
        return reason
    try:
        from cupy.cuda import nccl
    except ImportError as error:
        return f"cupy.cuda.nccl cannot be imported ({error})"
    if not nccl.available:
        return "CuPy was built without NCCL (install the nvidia-nccl-cu12 wheel)"
    try:
        nccl.get_version()
    except Exception as error:  # noqa: BLE001 - whatever the loader raised is the reason
        return f"the NCCL library does not load ({error}); install the nvidia-nccl-cu12 wheel"
    return None


def nccl_type(dtype: np.dtype) -> int:
    return _NCCL_TYPES[np.dtype(dtype).name]


class NcclWork:
    """A started collective on the NCCL stream; :meth:`wait` blocks the host until it is done
    (bounded by the group's timeout) and makes the current stream wait for it."""

    def __init__(self, engine: "NcclEngine", what: str):
        import cupy
        self._engine, self._what = engine, what
        self._done = cupy.cuda.Event(disable_timing=True)
        self._done.record(engine.stream)

    def poll(self) -> bool:
        """True when done (NCCL progresses on the GPU by itself)."""
        return self._done.done

    def wait(self) -> None:
        import cupy
        try:
            self._engine.group.wait(lambda: self._done.done, self._what)
        except Exception:
            self._engine.abort()
            raise
        self._engine.communicator.check_async_error()
        cupy.cuda.get_current_stream().wait_event(self._done)


class NcclEngine:
    """The group's collectives on NCCL."""

    staging = "device"

    def __init__(self, group: Any):
        import cupy
        from cupy.cuda import nccl

        from ..backend import get_backend, use

        self.group = group
        self.device = group.local_rank % cupy.cuda.runtime.getDeviceCount()
        if get_backend().capabilities.gpu:
            use("cupy", device=self.device)
        cupy.cuda.Device(self.device).use()
        unique_id = np.zeros(UNIQUE_ID_BYTES, dtype=np.int64)
        if group.rank == 0:
            unique_id[:] = nccl.get_unique_id()
        group.wait(group.comm.Ibcast(unique_id, root=0).Test, "init_process_group (NCCL unique id)")
        # NOTE: the communicator's creation blocks until every rank joins (NCCL has no timeout for it).
        self.communicator = nccl.NcclCommunicator(group.world_size, tuple(int(b) for b in unique_id), group.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._aborted = False

    def stage(self, a: Any) -> Any:
        """``a`` as a C-contiguous array on this rank's GPU: ``a`` itself when it is one, else a copy."""
        import cupy
        with cupy.cuda.Device(self.device):
            return cupy.ascontiguousarray(cupy.asarray(a))

    def _enter(self) -> None:
        """The NCCL stream waits for the work queued so far on the current stream (the inputs)."""
        import cupy
        ready = cupy.cuda.Event(disable_timing=True)
        ready.record(cupy.cuda.get_current_stream())
        self.stream.wait_event(ready)

    def start_all_reduce(self, buf: Any, op: str, what: str = "all_reduce") -> NcclWork:
        self._enter()
        self.communicator.allReduce(buf.data.ptr, buf.data.ptr, buf.size, nccl_type(buf.dtype), _NCCL_OPS[op],
                                    self.stream.ptr)
        return NcclWork(self, what)

    def all_reduce(self, buf: Any, op: str) -> None:
        self.start_all_reduce(buf, op).wait()

    def broadcast(self, buf: Any, src: int) -> None:
        self._enter()
        self.communicator.broadcast(buf.data.ptr, buf.data.ptr, buf.size, nccl_type(buf.dtype), src, self.stream.ptr)
        NcclWork(self, "broadcast").wait()

    def all_gather(self, send: Any, recv: Any) -> None:
        self._enter()
        self.communicator.allGather(send.data.ptr, recv.data.ptr, send.size, nccl_type(send.dtype), self.stream.ptr)
        NcclWork(self, "all_gather").wait()

    def reduce_scatter(self, send: Any, recv: Any, counts: list[int], op: str) -> None:
        """NCCL scatters equal chunks: the rows are padded to the largest chunk, then unpadded."""
        import cupy
        chunk = max(counts)
        padded = cupy.zeros(chunk * len(counts), dtype=send.dtype)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        flat = send.reshape(-1)
        for r, count in enumerate(counts):
            padded[r * chunk:r * chunk + count] = flat[offsets[r]:offsets[r + 1]]
        out = cupy.empty(chunk, dtype=send.dtype)
        self._enter()
        self.communicator.reduceScatter(padded.data.ptr, out.data.ptr, chunk, nccl_type(send.dtype),
                                        _NCCL_OPS[op], self.stream.ptr)
        NcclWork(self, "reduce_scatter").wait()
        recv.reshape(-1)[...] = out[:counts[self.group.rank]]

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        import cupy
        with cupy.cuda.Device(self.device):
            return cupy.empty(shape, dtype=dtype)

    def barrier(self) -> None:
        self.group.wait(self.group.comm.Ibarrier().Test, "barrier")

    def close(self) -> None:
        if not self._aborted:
            self.stream.synchronize()
            self.communicator.destroy()

    def abort(self) -> None:
        """Aborts the communicator: its pending kernels stop instead of waiting for a dead peer."""
        if not self._aborted:
            self._aborted = True
            self.communicator.abort()
