"""A recording mode of the emulated backend: every array computation that, on the cupy backend,
would run one of CuPy's own kernels (compiled by NVRTC at first use, "JIT") is recorded with the
file:line of the gpuconv code that asked for it.

The emulated backend computes on NumPy arrays, and the cupy backend runs the same Python code on
CuPy arrays: what NumPy computes here (ufuncs such as ``a + b``, reductions such as ``.sum()``,
functions such as ``xp.exp``, copies such as ``astype`` / ``copy`` / fancy indexing / item
assignment / a reshape of a non-contiguous view, and array creation that fills values such as
``xp.ones`` or ``xp.arange``) is what CuPy would compute with its kernels there. While recording:

- the backend's arrays (from ``empty`` / ``zeros`` / ``asarray`` and the kernels' outputs, and the
  parameters and buffers the test converts with :meth:`Recorder.track`) are :class:`RecordedArray`,
  an ``np.ndarray`` subclass whose ``__array_ufunc__`` / ``__array_function__`` and copying
  methods record before delegating, and whose results are again recorded arrays;
- the backend's ``xp`` is a proxy of NumPy that records the calls which compute or fill.

Only calls made from code under ``roots`` count (by default the gpuconv package without the
emulated backend's own machinery, which has no counterpart on the GPU). Views (``reshape`` of a
contiguous array, ``transpose``, slicing), ``empty`` / ``zeros`` (``cudaMemset`` on the GPU),
host-device copies and host reads (``float(loss)``) are not kernels and are not recorded.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

import gpuconv

GPUCONV_ROOT = Path(gpuconv.__file__).resolve().parent
# The emulated backend's own files: what they do with NumPy has no counterpart on the cupy backend.
# (the whole package gpuconv/backend/emulated/)
_EMULATOR_DIR = str(GPUCONV_ROOT / "backend" / "emulated") + "/"
_THIS_FILE = str(Path(__file__).resolve())

# np functions that only make views or read metadata (no device work on CuPy).
_VIEW_FUNCTIONS = {"reshape", "transpose", "moveaxis", "swapaxes", "squeeze", "expand_dims", "shape", "ndim",
                   "size", "broadcast_to", "result_type", "may_share_memory", "shares_memory", "atleast_1d",
                   "atleast_2d", "ndim", "iscomplexobj", "isrealobj", "can_cast"}
# xp attributes called by gpuconv code that are not kernels: allocation without values (cudaMalloc,
# cudaMemset) and types. ``xp.random`` (dropout's uniforms) is passed through unrecorded too: on the
# GPU that is CuPy's generator library, not an elementwise expression of ours.
_XP_ALLOWED = {"empty", "zeros", "empty_like", "zeros_like", "dtype", "result_type", "can_cast", "iinfo", "finfo"}

_state = threading.local()


class RecordedArray(np.ndarray):
    """An ndarray whose computations are reported to the active :class:`Recorder`."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        name = f"{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        if ufunc is np.matmul and all(_gemm_operand(a) for a in inputs):
            name = None  # cuBLAS (a transposed operand is a flag of the GEMM, not a copy)
        with _operation(name):
            inputs = tuple(_plain(a) for a in inputs)
            if out is not None:
                kwargs["out"] = tuple(_plain(o) for o in out)
            result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        copies = name in ("ascontiguousarray", "asarray", "array") and _copies(args, kwargs)
        if name in _VIEW_FUNCTIONS or (name in ("ascontiguousarray", "asarray") and not copies):
            with _operation(None):
                return _wrap(func._implementation(*_plain_tree(args), **_plain_tree(kwargs)))
        with _operation(name):
            return _wrap(func._implementation(*_plain_tree(args), **_plain_tree(kwargs)))

    def __setitem__(self, key, value):
        target = np.ndarray.__getitem__(_plain(self), _plain_tree(key))
        with _operation("__setitem__" if np.size(target) else None):
            np.ndarray.__setitem__(_plain(self), _plain_tree(key), _plain(value))

    def __getitem__(self, key):
        fancy = _is_fancy(key)
        with _operation("fancy __getitem__" if fancy else None):
            return _wrap(np.ndarray.__getitem__(_plain(self), _plain_tree(key)))

    def astype(self, dtype, *args, copy=True, **kwargs):
        converts = np.dtype(dtype) != self.dtype or copy
        with _operation("astype" if converts and self.size else None):
            return _wrap(np.ndarray.astype(_plain(self), dtype, *args, copy=copy, **kwargs))

    def copy(self, *args, **kwargs):
        with _operation("copy" if self.size else None):
            return _wrap(np.ndarray.copy(_plain(self), *args, **kwargs))

    def fill(self, value):
        with _operation("fill" if self.size else None):
            np.ndarray.fill(_plain(self), value)

    def reshape(self, *shape, **kwargs):
        result = np.ndarray.reshape(_plain(self), *shape, **kwargs)
        if self.size and not np.shares_memory(result, _plain(self)):
            _operation_record("reshape (copy of a non-contiguous array)")
        return _wrap(result)

    def _method(name):  # noqa: N805 - a factory of recorded methods, used in the class body only
        def method(self, *args, **kwargs):
            with _operation(name if self.size else None):
                return _wrap(getattr(np.ndarray, name)(_plain(self), *_plain_tree(args), **_plain_tree(kwargs)))
        method.__name__ = name
        return method

    for _name in ("argmax", "argmin", "take", "put", "repeat", "nonzero", "sort", "argsort", "dot", "clip",
                  "cumsum", "flatten", "round", "searchsorted", "choose", "compress", "diagonal", "trace"):
        locals()[_name] = _method(_name)
    del _name, _method


def _gemm_operand(a: Any) -> bool:
    """Whether cuBLAS takes ``a`` as it is: each matrix C- or F-contiguous."""
    if not isinstance(a, np.ndarray) or a.ndim < 2:
        return False
    matrix = a[(0,) * (a.ndim - 2)] if a.ndim > 2 else a
    return matrix.flags.c_contiguous or matrix.flags.f_contiguous


def _plain(a: Any) -> Any:
    return a.view(np.ndarray) if isinstance(a, RecordedArray) else a


def _plain_tree(value: Any) -> Any:
    if isinstance(value, RecordedArray):
        return value.view(np.ndarray)
    if isinstance(value, tuple):
        return tuple(_plain_tree(v) for v in value)
    if isinstance(value, list):
        return [_plain_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_tree(v) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, np.ndarray) and not isinstance(value, RecordedArray) and getattr(_state, "active", None):
        return value.view(RecordedArray)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _is_fancy(key: Any) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (np.ndarray, list)) for k in keys)


def _copies(args: tuple, kwargs: dict) -> bool:
    """Whether ``ascontiguousarray`` / ``asarray`` of a device array makes a copy (a kernel)."""
    a = args[0] if args else kwargs.get("a")
    if not isinstance(a, np.ndarray):
        return False  # from host data: a host-to-device copy
    dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
    return (dtype is not None and np.dtype(dtype) != a.dtype) or not a.flags.c_contiguous


@contextlib.contextmanager
def _operation(name: str | None):
    """Records ``name`` (when not None and not nested in another recorded operation)."""
    depth = getattr(_state, "depth", 0)
    if name is not None and depth == 0:
        _operation_record(name)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth


def _operation_record(name: str) -> None:
    recorder = getattr(_state, "active", None)
    if recorder is None or getattr(_state, "depth", 0):
        return
    recorder.observe(name, sys._getframe(1))


class _RecordingNumpy:
    """``be.xp`` while recording: NumPy, with the calls that compute or fill recorded."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(np, name)
        if not callable(value) or isinstance(value, type) or name in _XP_ALLOWED or name == "random":
            return value

        def call(*args, **kwargs):
            recorded = name
            if name in ("asarray", "ascontiguousarray", "array"):
                recorded = name if (name == "array" and kwargs.get("copy", True) and isinstance(args[0], np.ndarray)) \
                    or (name != "array" and _copies(args, kwargs)) else None
            elif name in _VIEW_FUNCTIONS or (name == "matmul" and all(_gemm_operand(a) for a in args[:2])):
                recorded = None
            with _operation(recorded):
                return _wrap(value(*_plain_tree(args), **_plain_tree(kwargs)))
        return call


class Recorder:
    """Records the would-be CuPy kernels of code run on the emulated backend ``be``.

    Use as a context manager around the code to watch; ``records`` is then a list of
    ``(operation, "file:line")``. ``roots``: files or folders whose calls count (default: gpuconv).
    """

    def __init__(self, be: Any, roots: tuple[Path, ...] = (GPUCONV_ROOT,)):
        self.be = be
        self.roots = tuple(str(Path(r).resolve()) for r in roots)
        self.records: list[tuple[str, str]] = []
        self._saved: dict[str, Any] = {}

    def observe(self, name: str, frame) -> None:
        while frame is not None:
            path = frame.f_code.co_filename
            if path != _THIS_FILE and not path.startswith(str(Path(np.__file__).parent)) \
                    and "contextlib" not in path:
                break
            frame = frame.f_back
        if frame is None:
            return
        path = frame.f_code.co_filename
        if not path.startswith(self.roots) or path.startswith(_EMULATOR_DIR):
            return
        where = f"{Path(path).relative_to(GPUCONV_ROOT.parent) if path.startswith(str(GPUCONV_ROOT)) else Path(path).name}"
        self.records.append((name, f"{where}:{frame.f_lineno}"))

    def track(self, array: Any) -> Any:
        """``array`` as a recorded array (a view of the same memory)."""
        return array.view(RecordedArray) if isinstance(array, np.ndarray) else array

    def track_module(self, module: Any) -> None:
        """Every parameter and buffer of ``module`` becomes a recorded array (same memory)."""
        for m in module.modules():
            for param in m._parameters.values():
                if param is not None:
                    param.data = self.track(param.data)
            for name, buf in list(m._buffers.items()):
                if buf is not None:
                    m._buffers[name] = self.track(buf)

    def __enter__(self) -> "Recorder":
        be = self.be
        for name in ("xp", "empty", "zeros", "asarray"):
            self._saved[name] = be.__dict__.get(name, _MISSING)
        empty, zeros, asarray = be.empty, be.zeros, be.asarray
        be.xp = _RecordingNumpy()
        be.empty = lambda shape, dtype: self.track(empty(shape, dtype))
        be.zeros = lambda shape, dtype: self.track(zeros(shape, dtype))

        def recorded_asarray(a, dtype=None):
            with _operation("asarray (a copy on the device)" if isinstance(a, np.ndarray)
                            and _copies((a,), {"dtype": dtype}) else None):
                return self.track(asarray(_plain(a), dtype))
        be.asarray = recorded_asarray
        _state.active = self
        _state.depth = 0
        return self

    def __exit__(self, *exc) -> None:
        _state.active = None
        for name, value in self._saved.items():
            if value is _MISSING:
                self.be.__dict__.pop(name, None)
            else:
                setattr(self.be, name, value)


_MISSING = object()
