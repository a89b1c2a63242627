"""Measured peak memory of a call: ``gpuconv.memory.measure`` when gpuconv has it, else our own.

Our fallback counts the bytes allocated while ``fn`` runs that are alive at its peak: through
``tracemalloc`` for NumPy arrays (numpy and emulated backends; NumPy reports its buffers to it)
and through a CuPy memory hook on the memory pool's allocations (cupy backend).
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable

from .capabilities import has_memory


def peak_hook() -> Any:
    """A CuPy memory hook that tracks the bytes taken from the memory pool (``current``, ``peak``)."""
    from cupy.cuda import memory_hook

    class PeakHook(memory_hook.MemoryHook):
        name = "gpuconv-bench-peak"

        def __init__(self) -> None:
            self.current = 0
            self.peak = 0

        # CuPy calls hooks with keyword arguments; mem_size is the pool's rounded block size.
        def malloc_postprocess(self, **kwargs):
            self.current += kwargs["mem_size"]
            self.peak = max(self.peak, self.current)

        def free_postprocess(self, **kwargs):
            self.current -= kwargs["mem_size"]

    return PeakHook()


def _cupy_peak(fn: Callable[[], Any]) -> int:
    import cupy

    hook = peak_hook()
    with hook:
        fn()
        cupy.cuda.get_current_stream().synchronize()
    return hook.peak


def _numpy_peak(fn: Callable[[], Any]) -> int:
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already:
            tracemalloc.stop()
    return max(0, peak - start)


def measure_peak(fn: Callable[[], Any], be: Any) -> int:
    """Peak bytes allocated by ``fn()`` (everything it creates and keeps counts, as at its peak)."""
    if has_memory():
        from gpuconv import memory

        return int(memory.measure(fn).peak)
    return _cupy_peak(fn) if be.name == "cupy" else _numpy_peak(fn)
