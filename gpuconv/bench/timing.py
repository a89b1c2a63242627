"""Timing: CUDA events on the GPU, ``perf_counter`` on the CPU; median and best of interleaved repeats."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Seconds per call over the timed repeats."""

    median: float
    best: float


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed_call(be: Any, clock: str = "wall") -> Callable[[Callable[[], Any]], float]:
    """``seconds = timed(fn)``: one call of ``fn`` timed on backend ``be`` (CUDA events on cupy).

    ``clock="cpu"`` (host backends): the CPU time of this process's threads instead of wall time,
    which a busy machine barely disturbs; it measures work only where no thread spins idle, i.e.
    with one BLAS thread and one PyTorch thread.
    """
    if be.capabilities.gpu:
        import cupy

        def timed(fn: Callable[[], Any]) -> float:
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return cupy.cuda.get_elapsed_time(start, stop) / 1e3
    else:
        now = CLOCKS[clock]

        def timed(fn: Callable[[], Any]) -> float:
            start = now()
            fn()
            return now() - start
    return timed


def interleaved(timed_fns: list[Callable[[], float]], warmup: int, repeats: int, pause: float = 0.0) -> list[Stats]:
    """Stats of each callable (which runs once and returns its own time in seconds).

    The callables are timed in turn within each repeat, so that a machine whose speed drifts (a
    shared or throttled CPU, a GPU changing clocks) slows all of them alike. ``pause`` seconds of
    sleep before each timed call let the previous library's worker threads stop spinning
    (OpenBLAS and OpenMP threads busy-wait after a call and would take a core from the next one).
    """
    for fn in timed_fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in timed_fns]
    for _ in range(repeats):
        for fn, bucket in zip(timed_fns, times, strict=True):
            if pause:
                time.sleep(pause)
            bucket.append(fn())
    return [Stats(statistics.median(bucket), min(bucket)) for bucket in times]


def copy_function(be: Any, a: Any) -> Callable[[], None]:
    """A call that copies ``a`` once: a device-to-device cudaMemcpy on cupy, ``np.copyto`` otherwise.

    It is the reference of the memory-bound benchmarks: their GB/s is given as a % of this copy's.
    """
    scratch = be.empty(a.shape, a.dtype)
    if be.capabilities.gpu:
        import cupy

        kind = cupy.cuda.runtime.memcpyDeviceToDevice

        def copy() -> None:
            cupy.cuda.runtime.memcpyAsync(scratch.data.ptr, a.data.ptr, a.nbytes, kind,
                                          cupy.cuda.get_current_stream().ptr)
    else:
        def copy() -> None:
            np.copyto(scratch, a)
    return copy
