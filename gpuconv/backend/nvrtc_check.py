"""Compiles kernels with NVRTC without a GPU, through the low-level bindings that ship with CuPy.

``cupy.RawModule`` asks for the current device before compiling; the raw NVRTC bindings do not, so
CI checks every kernel for sm_75, sm_80 and sm_90 on machines without a GPU, and the cupy loader
compiles CUBINs for its cache with the same function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .aot import NVRTC_OPTIONS, with_defines
from .kernel_source import compile_error, kernels_dir, read_source

ARCHITECTURES = ("compute_75", "compute_80", "compute_90")


def nvrtc_unavailable_reason() -> str | None:
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or the NVRTC library missing (RuntimeError / OSError)
        return f"NVRTC bindings unusable ({type(exc).__name__}: {exc}); install gpuconv[test]"
    return None


def compile_program(program: str, name: str, arch: str, options: tuple[str, ...]) -> bytes:
    """CUBIN bytes for ``arch="sm_XY"``, PTX bytes for ``arch="compute_XY"``, from a program's full text
    (defines included); KernelCompileError naming file:line when NVRTC rejects it."""
    from cupy_backends.cuda.libs import nvrtc

    handle = nvrtc.createProgram(program, name, [], [])
    try:
        try:
            nvrtc.compileProgram(handle, [f"-arch={arch}", *options])
        except nvrtc.NVRTCError:
            raise compile_error(name, nvrtc.getProgramLog(handle), f"NVRTC ({arch})") from None
        binary = nvrtc.getCUBIN(handle) if arch.startswith("sm_") else nvrtc.getPTX(handle)
        return binary.encode() if isinstance(binary, str) else bytes(binary)
    finally:
        nvrtc.destroyProgram(handle)


def compile_ptx(filename: str | Path, arch: str = "compute_90", defines: Mapping[str, object] | None = None) -> str:
    """PTX for one .cu file; KernelCompileError naming file:line when NVRTC rejects it."""
    name, text = read_source(filename)
    options = (*NVRTC_OPTIONS, f"-I{kernels_dir()}", f"-I{Path(filename).resolve().parent}")
    return compile_program(with_defines(name, text, defines), name, arch, options).decode().rstrip("\0")
