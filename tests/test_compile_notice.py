"""A compile that takes a while says so on stderr, once; a quick one (or a cached one) says nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gpuconv.backend import compile_notice as notice
from gpuconv.backend.emulated_backend import unavailable_reason
from gpuconv.backend.emulated_loader import EmulatedModule


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
