"""Backend selection, array movement and the cross-backend check."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import gpuconv
import gpuconv.backend as backend_package
import gpuconv.functional as F
from gpuconv.backend import BackendUnavailableError


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    import os

    environment = {k: v for k, v in os.environ.items() if k != "GPUCONV_BACKEND"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=False)


def test_use_and_context_manager_restore():
    previous = gpuconv.use("numpy")
    try:
        assert gpuconv.get_backend().name == "numpy"
        with gpuconv.backend("emulated") as be:
            assert be.name == "emulated" and gpuconv.get_backend() is be
            with gpuconv.backend("numpy"):
                assert gpuconv.get_backend().name == "numpy"
            assert gpuconv.get_backend().name == "emulated"
        assert gpuconv.get_backend().name == "numpy"
    finally:
        gpuconv.use(previous.name)


def test_backend_is_also_the_package():
    assert backend_package.get_backend is gpuconv.get_backend
    import gpuconv.backend.numpy.backend as nb

    assert nb.NumpyBackend.name == "numpy"


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="backend must be one of auto, numpy, cupy, emulated; got 'tpu'"):
        gpuconv.use("tpu")


def test_device_only_for_cupy():
    with pytest.raises(ValueError, match="device= applies to the cupy backend only"):
        gpuconv.use("numpy", device=0)


def test_environment_variable_sets_the_default():
    result = run_python("import gpuconv; print(gpuconv.get_backend().name)", GPUCONV_BACKEND="emulated")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "emulated"
    bad = run_python("import gpuconv; gpuconv.get_backend()", GPUCONV_BACKEND="fast")
    assert bad.returncode != 0 and "backend must be one of" in bad.stderr


def test_import_does_not_import_cupy():
    result = run_python("import sys, gpuconv, gpuconv.functional; "
                        "gpuconv.use('numpy'); print('cupy' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_auto_falls_back_to_numpy_with_one_warning(monkeypatch):
    monkeypatch.setattr(backend_package, "_auto_warned", False)
    monkeypatch.setattr(backend_package, "unavailable_reason",
                        lambda name: "no usable CUDA device (cudaErrorUnknown)" if name == "cupy" else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = backend_package.create("auto")
        second = backend_package.create("auto")
    assert first.name == second.name == "numpy"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert messages == ["gpuconv: computing on the CPU with numpy (backend 'auto') because no usable CUDA device "
                        "(cudaErrorUnknown)"]


def test_auto_warning_without_a_gpu_says_so_in_words_once_at_the_users_line():
    # A fresh process with no GPU (faked by the reason): the first op reaches the backend deep inside
    # gpuconv, yet the warning names the script's line; a second use does not warn again.
    script = ("import warnings, numpy as np\n"
              "import gpuconv.backend as b, gpuconv.functional as F\n"
              "b.unavailable_reason = lambda name: 'no NVIDIA GPU found (no NVIDIA driver is installed)' "
              "if name == 'cupy' else None\n"
              "warnings.simplefilter('always')\n"
              "F.relu(np.ones(3))  # first use\n"
              "b.use('auto')\n")
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "RuntimeWarning" in line]
    assert lines == ["<string>:5: RuntimeWarning: gpuconv: no NVIDIA GPU found (no NVIDIA driver is installed): "
                     "computing on the CPU with numpy (backend 'auto')"]


def test_cupy_unavailable_says_why():
    reason = backend_package.unavailable_reason("cupy")
    if reason is None:
        pytest.skip("a GPU is usable here")
    with pytest.raises(BackendUnavailableError, match="backend 'cupy' is unavailable: "):
        gpuconv.use("cupy")


def test_asarray_to_numpy_and_array_module(backend):
    a = gpuconv.asarray([[1.0, 2.0]], dtype=np.float32)
    assert backend.is_native(a) and a.dtype == np.float32
    back = gpuconv.to_numpy(a)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, [[1.0, 2.0]])
    assert gpuconv.get_array_module(a) is backend.xp
    assert gpuconv.get_array_module(np.ones(1), 3) is np


class FakeCupyArray:
    """Looks like a CuPy array to the cross-backend check, without needing a GPU."""

    __module__ = "cupy._core.core"
    __cuda_array_interface__ = {}
    ndim, shape, dtype = 4, (1, 1, 3, 3), np.dtype(np.float32)


def test_array_of_another_backend_is_a_type_error():
    with gpuconv.backend("numpy"), pytest.raises(
            TypeError, match="argument 'x' is a cupy array but the current backend is numpy; move it explicitly"):
        F.im2col(FakeCupyArray(), 2)
    with pytest.raises(TypeError, match="cannot be mixed"):
        gpuconv.get_array_module(np.ones(1), FakeCupyArray())
    with gpuconv.backend("numpy"), pytest.raises(TypeError, match="argument 'x' must be an array of the current "
                                                                 "backend \\(numpy\\), got builtins.list"):
        F.im2col([[1.0]], 2)


@pytest.mark.gpu
def test_numpy_array_on_cupy_backend_is_a_type_error():
    if backend_package.unavailable_reason("cupy"):
        pytest.skip(f"cupy backend unavailable: {backend_package.unavailable_reason('cupy')}")
    with gpuconv.backend("cupy"), pytest.raises(TypeError, match="is a numpy array but the current backend is cupy"):
        F.im2col(np.ones((1, 1, 3, 3), np.float32), 2)


@pytest.mark.gpu
def test_cupy_launches_honour_the_current_stream():
    if backend_package.unavailable_reason("cupy"):
        pytest.skip(f"cupy backend unavailable: {backend_package.unavailable_reason('cupy')}")
    import cupy

    with gpuconv.backend("cupy"):
        x = cupy.random.standard_normal((4, 3, 32, 32), dtype=cupy.float32)
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            cols = F.im2col(x, 3, padding=1)
        stream.synchronize()
        expected = F.im2col(x, 3, padding=1)
        cupy.testing.assert_array_equal(cols, expected)
