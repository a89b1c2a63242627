"""The backend matrix: numpy always; emulated when a C++ compiler is found; cupy when a GPU is usable.

Tests take the ``backend`` fixture (every backend, each made current for the test) or
``kernel_backend`` (the backends that run our CUDA kernels: emulated and cupy). A backend that
cannot run here is skipped with the reason.

``pytest --emu-sanitize`` runs every emulated launch in the emulator's sanitizer mode (as
``GPUCONV_EMU_SANITIZE=1``); ``pytest --emu-asan`` re-runs the same pytest command in a child
process that preloads the AddressSanitizer runtime, with the ASan + UBSan builds.
"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

import gpuconv
from gpuconv.backend import unavailable_reason


def _param(name: str) -> pytest.param:
    reason = unavailable_reason(name)
    # One short line per skip: the reason's first clause (the raw CUDA error, in parentheses, stays
    # in gpuconv.backend.unavailable_reason and auto's warning).
    short = None if reason is None else reason.split(" (")[0]
    marks = [pytest.mark.skipif(reason is not None, reason=f"{name} backend unavailable: {short}")]
    if name == "cupy":
        marks.append(pytest.mark.gpu)
    return pytest.param(name, marks=marks, id=name)


def pytest_addoption(parser):
    parser.addoption("--emu-sanitize", action="store_true",
                     help="emulated launches in the emulator's sanitizer mode: memcheck, racecheck, initcheck, "
                          "synccheck (as GPUCONV_EMU_SANITIZE=1)")
    parser.addoption("--emu-asan", action="store_true",
                     help="emulated launches on AddressSanitizer + UBSan builds (GPUCONV_EMU_SANITIZE=asan), in a "
                          "child pytest that preloads the ASan runtime")


def _emu_sanitize_mode(config) -> str | None:
    return "asan" if config.getoption("--emu-asan") else "1" if config.getoption("--emu-sanitize") else None


def pytest_cmdline_main(config):
    if _emu_sanitize_mode(config) != "asan" or os.environ.get("GPUCONV_EMU_SANITIZE") == "asan":
        return None
    from gpuconv.backend.emulated import asan_runtime, run_under_asan

    if asan_runtime() is None:
        raise pytest.UsageError("--emu-asan: the C++ compiler has no AddressSanitizer runtime (libasan.so)")
    return run_under_asan([sys.executable, "-m", "pytest", *config.invocation_params.args],
                          cwd=config.invocation_params.dir).returncode


def pytest_configure(config):
    # Tests of the emulator itself carry this marker, so that `pytest -k emulated` selects them too.
    config.addinivalue_line("markers", "emulated: tests of the CUDA-on-CPU emulator itself (kernels/emu/)")
    config.addinivalue_line("markers", "measures_allocations: compares bytes that tracemalloc sees with an "
                                       "estimate to a few KB; skipped under --emu-sanitize")
    mode = _emu_sanitize_mode(config)
    if mode:
        os.environ["GPUCONV_EMU_SANITIZE"] = mode  # xdist workers inherit it


def pytest_collection_modifyitems(config, items):
    if _emu_sanitize_mode(config) != "1":
        return
    # The shadows and guarded copies are outside the Python allocators (mmap), but a sanitizer-mode
    # launch still makes Python objects a plain one does not (guarded-copy records, a ctypes region
    # per array reached through an address table, the ctypes array type of a first-seen region count), which
    # tracemalloc counts against tolerances of a few KB.
    skip = pytest.mark.skip(reason="--emu-sanitize: the sanitizer's per-launch Python bookkeeping is in the "
                                   "tracemalloc measurement this test compares to a few KB")
    for item in items:
        if item.get_closest_marker("measures_allocations"):
            item.add_marker(skip)


ALL_BACKENDS = [_param("numpy"), _param("emulated"), _param("cupy")]
KERNEL_BACKENDS = [_param("emulated"), _param("cupy")]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    """Each backend in turn, current for the duration of the test."""
    with gpuconv.backend(request.param) as be:
        yield be


@pytest.fixture(params=KERNEL_BACKENDS)
def kernel_backend(request):
    """The backends that run kernels/*.cu (emulated, cupy), current for the test."""
    with gpuconv.backend(request.param) as be:
        yield be


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: fresh random data, reproducible per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def numpy_f64():
    """The numpy backend, current, with gpuconv's generator seeded: the module tests that check a
    float64 layer with tests/test_nn.py's ``check_layer`` (forward, backward by finite differences)."""
    with gpuconv.backend("numpy"):
        gpuconv.manual_seed(7)
        yield


@pytest.fixture
def fresh_cache_decisions(monkeypatch):
    """Each test decides anew whether a cache folder is trusted, and warns anew (the decisions and
    warnings are per process otherwise)."""
    from gpuconv.backend import cache_folder, cache_trust

    cache_folder.forget_decisions()
    monkeypatch.setattr(cache_trust, "_warned", set())
    yield
    cache_folder.forget_decisions()


@pytest.fixture
def emulated_without_kernels(monkeypatch):
    """The emulated backend, current, with kernel lookup replaced by an assertion: a test that a
    bad argument raises before any kernel is requested."""
    reason = unavailable_reason("emulated")
    if reason is not None:
        pytest.skip(f"emulated backend unavailable: {reason}")
    with gpuconv.backend("emulated") as be:
        def no_kernels(*args, **kwargs):
            raise AssertionError("a kernel was requested before the arguments were checked")

        monkeypatch.setattr(be, "kernel", no_kernels)
        yield be
