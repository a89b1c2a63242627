"""Compiles kernels with NVRTC without a GPU, through the low-level bindings that ship with CuPy.

``cupy.RawModule`` asks for the current device before compiling; the raw NVRTC bindings do not, so
CI checks every kernel for sm_75, sm_80 and sm_90 on machines without a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .cupy_loader import NVRTC_OPTIONS
from .kernel_source import compile_error, kernels_dir, read_source, with_defines

ARCHITECTURES = ("compute_75", "compute_80", "compute_90")


def nvrtc_unavailable_reason() -> str | None:
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or the NVRTC library missing (RuntimeError / OSError)
        return f"NVRTC bindings unusable ({type(exc).__name__}: {exc}); install gpuconv[test]"
    return None


def compile_ptx(filename: str | Path, arch: str = "compute_90", defines: Mapping[str, object] | None = None) -> str:
    """PTX for one .cu file; KernelCompileError naming file:line when NVRTC rejects it."""
    from cupy_backends.cuda.libs import nvrtc

    name, text = read_source(filename)
    program = nvrtc.createProgram(with_defines(name, text, defines), name, [], [])
    try:
        options = [f"-arch={arch}", *NVRTC_OPTIONS, f"-I{kernels_dir()}", f"-I{Path(filename).resolve().parent}"]
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError:
            raise compile_error(name, nvrtc.getProgramLog(program), f"NVRTC ({arch})") from None
        ptx = nvrtc.getPTX(program)
        return ptx.decode() if isinstance(ptx, bytes) else ptx
    finally:
        nvrtc.destroyProgram(program)
