"""Kernels replaced by stubs, to measure what gpuconv's Python side costs and allocates per call.

Used by ``benchmarks/bench_host_overhead.py`` (host time without the kernels' own work) and by the
tests that count the bytes the launchers allocate (a real emulated launch also makes short-lived
Python objects of its own, a few KB each, which tracemalloc would count).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from .signature import check_arguments


class LaunchCounter:
    """How many kernel launches the stubs received."""

    def __init__(self) -> None:
        self.launches = 0


@contextlib.contextmanager
def stubbed_kernels(backend: Any) -> Iterator[LaunchCounter]:
    """Every kernel of ``backend`` (cupy or emulated) becomes a stub that checks its arguments as the
    loaders do, counts the launch and runs nothing: outputs keep whatever their buffers held.
    Yields the counter; the real kernels are back on exit."""
    original = backend.kernel
    counter = LaunchCounter()

    def stub_for(*args: Any, **kwargs: Any):
        signature = original(*args, **kwargs).signature

        def launch(grid, block, kernel_args, shared_mem: int = 0) -> None:
            check_arguments(signature, kernel_args, (np.ndarray,), "stub")
            counter.launches += 1
        return launch

    # The launchers cache launch plans holding kernel objects: start from empty caches, so that the
    # plans made here hold the stubs, and put the real ones back afterwards.
    plans = {name: value for name, value in vars(backend).items() if name.endswith("_plans")}
    for name in plans:
        setattr(backend, name, {})
    backend.kernel = stub_for
    try:
        yield counter
    finally:
        del backend.kernel
        for name, value in plans.items():
            setattr(backend, name, value)
