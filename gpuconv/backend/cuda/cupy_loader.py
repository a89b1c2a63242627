"""Loads kernels/*.cu as ``cupy.RawModule`` from a compiled binary (shipped, cached or compiled now by
NVRTC: see kernel_binaries.py) and wraps each kernel in the argument check."""

from __future__ import annotations

from typing import Mapping

from ..kernel_binaries import binary_path
from ..kernel_source import read_source
from ..nvrtc_check import compile_program
from ..signature import Signature, check_arguments, parse_signatures


class CheckedKernel:
    """A ``cupy.RawKernel`` that checks its arguments against the kernel's signature first.

    Real CuPy computes garbage when, say, a float64 array meets a ``float*`` parameter.
    """

    def __init__(self, raw, signature: Signature, filename: str):
        import cupy

        self.raw = raw
        self.signature = signature
        self.name = signature.name
        self.filename = filename
        self._array_types = (cupy.ndarray,)

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        check_arguments(self.signature, args, self._array_types, "cupy")
        # RawKernel launches on the current stream (cupy.cuda.get_current_stream()).
        self.raw(grid, block, args, shared_mem=shared_mem)


class CupyModule:
    """A .cu file compiled for the current device."""

    def __init__(self, filename: str, defines: Mapping[str, object] | None = None):
        import cupy

        name, text = read_source(filename)
        self.filename = name
        self.signatures = parse_signatures(text, name)
        self.path = binary_path(filename, defines, device_capability(), compile_program)
        self.raw = cupy.RawModule(path=str(self.path))

    def get_function(self, name: str) -> CheckedKernel:
        if name not in self.signatures:
            raise AttributeError(f"{self.filename} has no extern \"C\" __global__ kernel named {name!r}; "
                                 f"it has {sorted(self.signatures)}")
        return CheckedKernel(self.raw.get_function(name), self.signatures[name], self.filename)


def device_capability() -> tuple[int, int]:
    """The current CUDA device's compute capability, e.g. ``(9, 0)``."""
    import cupy

    digits = cupy.cuda.Device().compute_capability  # "90", "86", "120"
    return int(digits[:-1]), int(digits[-1])
