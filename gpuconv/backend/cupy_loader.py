"""Loads kernels/*.cu with ``cupy.RawModule`` (NVRTC) and wraps each kernel in the argument check."""

from __future__ import annotations

from typing import Mapping

from .kernel_source import compile_error, kernels_dir, read_source, with_defines
from .signature import Signature, check_arguments, parse_signatures

NVRTC_OPTIONS = ("-std=c++17",)


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
    """A .cu file compiled by NVRTC for the current device."""

    def __init__(self, filename: str, defines: Mapping[str, object] | None = None):
        import cupy

        name, text = read_source(filename)
        self.filename = name
        self.signatures = parse_signatures(text, name)
        self.raw = cupy.RawModule(code=with_defines(name, text, defines),
                                  options=NVRTC_OPTIONS + (f"-I{kernels_dir()}",))
        try:
            self.raw.compile()
        except cupy.cuda.compiler.CompileException as exc:
            raise compile_error(name, str(exc), "NVRTC (cupy backend)") from None

    def get_function(self, name: str) -> CheckedKernel:
        if name not in self.signatures:
            raise AttributeError(f"{self.filename} has no extern \"C\" __global__ kernel named {name!r}; "
                                 f"it has {sorted(self.signatures)}")
        return CheckedKernel(self.raw.get_function(name), self.signatures[name], self.filename)
