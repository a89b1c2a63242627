"""Measured peak memory of a call, through ``gpuconv.memory.measure`` (tracemalloc on the numpy and
emulated backends, a CuPy memory hook on the pool's allocations on cupy)."""

from __future__ import annotations

from typing import Any, Callable

from gpuconv import memory


def measure_peak(fn: Callable[[], Any], be: Any) -> int:
    """Peak bytes allocated by ``fn()`` (everything it creates and keeps counts, as at its peak)."""
    return int(memory.measure(fn).peak)
