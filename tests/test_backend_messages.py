"""The cupy backend's unavailable reason: a missing NVIDIA driver or GPU is named as such in words;
the CUDA runtime's own message is kept where a driver exists (too old, no device)."""

from __future__ import annotations

import sys
import types

from gpuconv.backend.cuda import cupy_backend


class FakeRuntimeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _fake_cupy(monkeypatch, get_device_count):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    monkeypatch.setitem(sys.modules, "cupy", cupy)


INSUFFICIENT = "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"


def _raising(status, message):
    def raise_error():
        raise FakeRuntimeError(status, message)
    return raise_error


def test_insufficient_driver_without_a_driver_says_no_gpu(monkeypatch):
    # The runtime says "driver version is insufficient" on a machine with no driver at all: that
    # must not send anyone to upgrade a driver they do not have.
    _fake_cupy(monkeypatch, _raising(35, INSUFFICIENT))
    monkeypatch.setattr(cupy_backend, "driver_installed", lambda: False)
    reason = cupy_backend.unavailable_reason()
    assert reason == "no NVIDIA GPU found (no NVIDIA driver is installed)"
    assert "insufficient" not in reason


def test_insufficient_driver_with_a_driver_keeps_the_runtime_error(monkeypatch):
    _fake_cupy(monkeypatch, _raising(35, INSUFFICIENT))
    monkeypatch.setattr(cupy_backend, "driver_installed", lambda: True)
    reason = cupy_backend.unavailable_reason()
    assert reason.startswith("the NVIDIA driver is too old for CuPy's CUDA runtime (update the driver")
    assert reason.endswith(f"FakeRuntimeError: {INSUFFICIENT})")


def test_no_device_is_named(monkeypatch):
    _fake_cupy(monkeypatch, _raising(100, "cudaErrorNoDevice: no CUDA-capable device is detected"))
    assert cupy_backend.unavailable_reason() == ("no NVIDIA GPU found (the NVIDIA driver sees no device: "
                                                 "FakeRuntimeError: cudaErrorNoDevice: no CUDA-capable device is "
                                                 "detected)")


def test_other_runtime_errors_and_zero_devices(monkeypatch):
    def raise_error():
        raise FakeRuntimeError(999, "cudaErrorUnknown: unknown error")

    _fake_cupy(monkeypatch, raise_error)
    expected = "no usable CUDA device (FakeRuntimeError: cudaErrorUnknown: unknown error)"
    assert cupy_backend.unavailable_reason() == expected
    _fake_cupy(monkeypatch, lambda: 0)
    assert cupy_backend.unavailable_reason().startswith("no NVIDIA GPU found (")
    _fake_cupy(monkeypatch, lambda: 1)
    assert cupy_backend.unavailable_reason() is None


def test_skip_reason_is_one_short_line():
    from tests.conftest import ALL_BACKENDS

    for param in ALL_BACKENDS:
        for mark in param.marks:
            if mark.name == "skipif" and mark.args[0]:
                reason = mark.kwargs["reason"]
                assert "\n" not in reason and "(" not in reason and len(reason) < 80, reason
