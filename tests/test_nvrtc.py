"""Every kernels/*.cu file (and the emulator's test kernels) compiles with NVRTC for sm_75/80/90.

Needs no GPU: the NVRTC bindings that ship with CuPy work without a device. In CI (CI is set) a
missing NVRTC is a failure, not a skip, so this check cannot silently vanish.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuconv.backend.aot import with_defines
from gpuconv.backend.errors import KernelCompileError
from gpuconv.backend.kernel_binaries import compile_options
from gpuconv.backend.kernel_source import kernel_files, read_source
from gpuconv.backend.nvrtc_check import ARCHITECTURES, compile_program, compile_ptx, nvrtc_unavailable_reason
from gpuconv.backend.signature import parse_signatures

from .elf_symbols import function_symbols

REASON = nvrtc_unavailable_reason()
if REASON and os.environ.get("CI"):
    raise RuntimeError(f"CI must compile-check the kernels with NVRTC: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))

SOURCES = kernel_files() + sorted((Path(__file__).parent / "emu_kernels").glob("*.cu"))


def test_there_are_kernels_to_check():
    assert any(p.name == "im2col.cu" for p in SOURCES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_compiles_with_nvrtc(source, arch):
    ptx = compile_ptx(source, arch)
    assert f".target sm_{arch.split('_')[1]}" in ptx
    assert ".entry" in ptx


def test_nvrtc_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.cu"
    bad.write_text('#include "common.cuh"\nextern "C" __global__ void k(float* x) {\n    x[0] = missing;\n}\n')
    with pytest.raises(KernelCompileError, match=r"bad\.cu:3") as info:
        compile_ptx(bad, "compute_90")
    assert "missing" in info.value.log


def test_cubin_compiled_for_the_loader_cache_holds_every_entry_point():
    # The cupy loader compiles CUBINs with compile_program when no shipped binary fits the GPU.
    name, text = read_source("im2col.cu")
    cubin = compile_program(with_defines(name, text, None), name, "sm_86", compile_options())
    assert set(parse_signatures(text, name)) <= function_symbols(cubin)
