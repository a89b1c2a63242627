"""The cupy backend's unavailable reason: a missing NVIDIA driver or GPU is named as such, with the
CUDA runtime's own message kept in parentheses."""

from __future__ import annotations

import sys
import types

import pytest

from gpuconv.backend import cupy_backend


class FakeRuntimeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _fake_cupy(monkeypatch, get_device_count):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    monkeypatch.setitem(sys.modules, "cupy", cupy)


@pytest.mark.parametrize("status,message", [
    (35, "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"),
    (100, "cudaErrorNoDevice: no CUDA-capable device is detected"),
])
def test_no_driver_or_device_is_named(monkeypatch, status, message):
    def raise_error():
        raise FakeRuntimeError(status, message)

    _fake_cupy(monkeypatch, raise_error)
    reason = cupy_backend.unavailable_reason()
    assert reason == f"no NVIDIA driver/GPU found (FakeRuntimeError: {message})"


def test_other_runtime_errors_and_zero_devices(monkeypatch):
    def raise_error():
        raise FakeRuntimeError(999, "cudaErrorUnknown: unknown error")

    _fake_cupy(monkeypatch, raise_error)
    expected = "no usable CUDA device (FakeRuntimeError: cudaErrorUnknown: unknown error)"
    assert cupy_backend.unavailable_reason() == expected
    _fake_cupy(monkeypatch, lambda: 0)
    assert cupy_backend.unavailable_reason().startswith("no NVIDIA driver/GPU found (")
    _fake_cupy(monkeypatch, lambda: 1)
    assert cupy_backend.unavailable_reason() is None


def test_skip_reason_is_one_short_line():
    from tests.conftest import ALL_BACKENDS

    for param in ALL_BACKENDS:
        for mark in param.marks:
            if mark.name == "skipif" and mark.args[0]:
                reason = mark.kwargs["reason"]
                assert "\n" not in reason and "(" not in reason and len(reason) < 80, reason
