"""A compile that takes a while says so on stderr, once; a quick one (or a cached one) says nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpuconv.backend import compile_notice as notice
from gpuconv.backend.emulated.backend import unavailable_reason
from gpuconv.backend.emulated.loader import EmulatedModule


def test_a_slow_block_prints_one_line(capsys):
    with notice.compile_notice("compiling x.cu", after=0.01):
        time.sleep(0.3)
    assert capsys.readouterr().err == "gpuconv: compiling x.cu\n"


def test_a_quick_block_prints_nothing(capsys):
    with notice.compile_notice("compiling x.cu", after=0.5):
        pass
    time.sleep(0.6)  # the cancelled timer must not fire later either
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")
def test_the_emulators_first_compile_announces_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPUCONV_EMU_CACHE", str(tmp_path))
    monkeypatch.setattr(notice, "NOTICE_AFTER_SECONDS", 0.01)
    source = Path(__file__).parent / "emu_kernels" / "emulator_cases.cu"
    EmulatedModule(source)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "gpuconv: compiling emulator_cases.cu for the emulated backend with g++" in err
    EmulatedModule(source)  # cached now: silent
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(unavailable_reason() is not None, reason=f"emulator unavailable: {unavailable_reason()}")
def test_a_module_loaded_for_instrumented_launches_compiles_only_that_build(tmp_path, monkeypatch):
    # gpuconv-bench on the emulator profiles every launch (the instrumented build): loading a kernel
    # file there must not also compile the plain build nobody launches (each g++ run takes seconds).
    from gpuconv.backend import emulated

    monkeypatch.setenv("GPUCONV_EMU_CACHE", str(tmp_path / "cache"))
    compiled = []
    real_compile = EmulatedModule._compile

    def recording_compile(cxx, name, source, flags, link_flags, library_path):
        compiled.append(library_path.name)
        real_compile(cxx, name, source, flags, link_flags, library_path)

    monkeypatch.setattr(EmulatedModule, "_compile", staticmethod(recording_compile))
    source = tmp_path / "tiny.cu"
    source.write_text('extern "C" __global__ void tiny(float* y) { y[threadIdx.x] = 1.0f; }\n')
    with emulated.profile():
        EmulatedModule(source)
    assert len(compiled) == 1 and compiled[0].startswith("tiny-san-"), compiled
    compiled.clear()
    module = EmulatedModule(source.with_name("tiny.cu"))
    assert len(compiled) == 1 and compiled[0].startswith("tiny-") and "-san-" not in compiled[0], compiled
    compiled.clear()
    module.build("sanitizer")  # cached from the first load
    assert compiled == []
