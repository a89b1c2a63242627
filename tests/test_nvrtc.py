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

from .elf_symbols import entry_symbols, function_symbols

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


@pytest.mark.parametrize("source", kernel_files(), ids=lambda p: p.name)
def test_cubin_entry_points_are_exactly_the_parsed_list(source):
    # The cupy loader compiles CUBINs with compile_program when no shipped binary fits the GPU. Its
    # entry symbols must be the list the loaders read (generated GC_ENTRY* entry points included):
    # they launch only what the parser found, with its parameter list checked against the arguments.
    name, text = read_source(source)
    cubin = compile_program(with_defines(name, text, None), name, "sm_80", compile_options())
    assert entry_symbols(cubin) == set(parse_signatures(text, name))


def test_entry_symbols_leave_out_device_subroutines():
    # A float64 division keeps a slow path out of line: a function symbol, but no entry point.
    program = ('#include "common.cuh"\nGC_ENTRY_F(divide, (T* x, T d), x[0] = x[0] / d)\n')
    cubin = compile_program(program, "divide.cu", "sm_80", compile_options())
    assert entry_symbols(cubin) == {"divide_f32", "divide_f64"} < function_symbols(cubin)
