"""The emulated backend: NumPy arrays, our CUDA kernels compiled for the CPU (kernels/emu/)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..cuda.backend import CudaBackend
from .loader import POISON_F32, POISON_F64, EmulatedModule, compiler, instrumented
from .unwritten import track


def unavailable_reason() -> str | None:
    """Why the emulated backend cannot run here, or None when it can."""
    if compiler() is None:
        return "no C++ compiler found ($CXX or g++), which the emulated backend needs to build the kernels"
    return None


# What one primitive's kernel launches hold in Python objects on the emulated backend while they run
# (ctypes argument records, address tables): 4.5 to 7 KB per primitive, measured with tracemalloc
# around each primitive of a ResNet training step (tests/test_memory.py checks whole steps).
LAUNCH_HOST_BYTES = 6 * 1024


class EmulatedBackend(CudaBackend):
    name = "emulated"
    xp = np
    capabilities = replace(CudaBackend.capabilities, timed=False, launch_host_bytes=LAUNCH_HOST_BYTES)

    def load_module(self, filename, defines):
        return EmulatedModule(filename, defines)

    def launch_reaching(self, kernel, grid, block, args, reachable):
        # Only the instrumented build sees the accesses; a plain launch makes no list (the memory
        # estimator's checks measure a training step's Python allocations).
        if instrumented():
            kernel(grid, block, args, reachable=reachable())
        else:
            kernel(grid, block, args)

    def empty(self, shape, dtype):
        # Poisoned, so that an element a kernel forgets to write fails the comparison in a test.
        # Floats get NaNs with a payload no arithmetic makes, which the sanitizer's initcheck
        # recognizes when a kernel reads them; integers get 0xFF bytes (-1) and a shadow of the
        # elements kernels wrote (emulated_unwritten), since -1 is also a legal value.
        out = np.empty(shape, dtype=dtype)
        poison = {np.dtype(np.float32): POISON_F32, np.dtype(np.float64): POISON_F64}
        if out.dtype.kind == "f":
            out.fill(poison.get(out.dtype, np.nan))
        elif out.dtype.kind in "iu":
            out.fill(-1 if out.dtype.kind == "i" else np.iinfo(out.dtype).max)  # every byte 0xFF
            track(out)
        else:
            out.fill(0xFF)
        return out
