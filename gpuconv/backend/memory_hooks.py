"""Memory accounting of the backends: a high-water mark of bytes in use while a function runs,
the cupy memory pool's figures, and CuPy's out-of-memory error (the only module besides the
cupy backend that touches CuPy, through ``import cupy`` inside functions).

On numpy and emulated (NumPy arrays in host memory) ``tracemalloc`` sees every NumPy buffer; on
cupy a ``cupy.cuda.MemoryHook`` reads the pool's bytes in use after each allocation.
"""

from __future__ import annotations

import re
import tracemalloc
from contextlib import contextmanager
from typing import Iterator

class OutOfMemoryError(MemoryError):
    """A gpuconv op could not get memory. The message names the op and the bytes requested and,
    when the model is known, the estimator's breakdown and a batch size that fits."""

    def __init__(self, message: str, *, op: str | None = None, requested: int | None = None):
        super().__init__(message)
        self.op = op
        self.requested = requested


# CuPy's memory pool hands out blocks in multiples of this many bytes.
CUPY_BLOCK = 512


def round_to_block(nbytes: int, block: int = CUPY_BLOCK) -> int:
    """``nbytes`` rounded up to a whole number of pool blocks (0 stays 0)."""
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    return -(-int(nbytes) // block) * block


class PeakTracker:
    """What :func:`track_peak` yields: ``start`` (bytes in use when tracking began, as far as the
    tracker can see), ``peak`` (the high-water mark, including ``start``), ``reserved`` (cupy: the
    pool's total bytes at the end, in use or cached; None elsewhere)."""

    def __init__(self) -> None:
        self.start = 0
        self.peak = 0
        self.reserved: int | None = None


@contextmanager
def track_peak(backend_name: str) -> Iterator[PeakTracker]:
    """High-water mark of bytes in use inside the ``with`` block.

    numpy/emulated: tracemalloc (started here when it is not running; then only what is allocated
    inside the block is seen and ``start`` is 0). cupy: the default memory pool's used bytes,
    read after every allocation by a MemoryHook; ``start`` is what was in use when the block began.
    """
    tracker = PeakTracker()
    if backend_name == "cupy":
        with _cupy_hook(tracker):
            yield tracker
        return
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracker.start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield tracker
        tracker.peak = tracemalloc.get_traced_memory()[1]
    finally:
        if started:
            tracemalloc.stop()


@contextmanager
def _cupy_hook(tracker: PeakTracker) -> Iterator[None]:
    import cupy

    pool = cupy.get_default_memory_pool()

    class _Hook(cupy.cuda.MemoryHook):
        name = "gpuconv_peak"

        def malloc_postprocess(self, device_id, size, mem_size, mem_ptr, pmem_id):
            tracker.peak = max(tracker.peak, pool.used_bytes())

    cupy.cuda.get_current_stream().synchronize()
    tracker.start = tracker.peak = pool.used_bytes()
    with _Hook():
        yield
    cupy.cuda.get_current_stream().synchronize()
    tracker.reserved = pool.total_bytes()


def device_free_bytes() -> int:
    """cupy: free device memory plus what the pool holds free (both usable for new arrays)."""
    import cupy

    free, _ = cupy.cuda.runtime.memGetInfo()
    pool = cupy.get_default_memory_pool()
    return int(free) + int(pool.free_bytes())


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is CuPy's out-of-memory error (without importing CuPy when it is absent)."""
    return type(exc).__name__ == "OutOfMemoryError" and type(exc).__module__.startswith("cupy")


def requested_bytes(exc: BaseException) -> int | None:
    """The size CuPy failed to allocate, from its error (None when it does not say)."""
    match = re.search(r"allocating ([\d,]+) bytes", str(exc))
    return int(match.group(1).replace(",", "")) if match else None


# The host limit of gpuconv.memory.set_host_limit lives here, below the functional layer, so that
# every op can honour it per request without importing gpuconv.memory (which imports the ops).
_host_limit: int | None = None


def host_limit() -> int | None:
    """The numpy/emulated limit in bytes set by ``gpuconv.memory.set_host_limit`` (None: none)."""
    return _host_limit


def store_host_limit(limit_bytes: int | None) -> None:
    """Records the limit; ``gpuconv.memory.set_host_limit`` validates it first."""
    global _host_limit
    _host_limit = limit_bytes
