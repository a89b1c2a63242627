"""Kernels replaced by stubs, to measure what gpuconv's Python side costs and allocates per call.

Used by ``benchmarks/bench_host_overhead.py`` (host time without the kernels' own work) and by the
tests that count the bytes the launchers allocate (a real emulated launch also makes short-lived
Python objects of its own, a few KB each, which tracemalloc would count).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from .signature import Signature, check_arguments


class LaunchCounter:
    """How many kernel launches the stubs received."""

    def __init__(self) -> None:
        self.launches = 0


class _StubKernel:
    """Checks a launch's arguments as the loaders do, counts it, runs nothing."""

    def __init__(self, signature: Signature, counter: LaunchCounter) -> None:
        self.signature, self._counter = signature, counter

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        check_arguments(self.signature, args, (np.ndarray,), "stub")
        self._counter.launches += 1


class _StubModule:
    def __init__(self, module: Any, counter: LaunchCounter) -> None:
        self._module, self._counter = module, counter

    def get_function(self, name: str) -> _StubKernel:
        return _StubKernel(self._module.get_function(name).signature, self._counter)


@contextlib.contextmanager
def stubbed_kernels(backend: Any, *, gemms: bool = False) -> Iterator[LaunchCounter]:
    """Every kernel of ``backend`` (cupy or emulated) becomes a stub that checks its arguments as the
    loaders do, counts the launch and runs nothing: outputs keep whatever their buffers held. With
    ``gemms``, the convolutions' GEMMs (``conv_gemm``) are skipped too (not counted as launches).
    Yields the counter; the real kernels are back on exit."""
    counter = LaunchCounter()
    real_module = backend.module
    # Kernel objects cached while stubbing (the backend's kernel table, the launchers' launch plans)
    # are stubs: they go into empty tables, and the real tables are put back afterwards.
    tables = {name: value for name, value in vars(backend).items() if name == "_kernels" or name.endswith("_plans")}
    for name in tables:
        setattr(backend, name, {})
    backend.module = lambda *args, **kwargs: _StubModule(real_module(*args, **kwargs), counter)
    if gemms:
        backend.conv_gemm = lambda a, b, out: out
    try:
        yield counter
    finally:
        del backend.module
        if gemms:
            del backend.conv_gemm
        for name, value in tables.items():
            setattr(backend, name, value)
