"""Tensor constructors with PyTorch's names: ``tensor``, ``as_tensor``, ``zeros``, ``ones``, ``full``,
``empty``, ``randn``, ``rand``, ``arange`` and the ``*_like`` forms. They create on the current backend
(``device`` picks another: "cpu", "cuda", "cuda:N" or a backend name) in float32 by default for
floating values, as PyTorch does."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..backend import array_kind, for_device
from .tensor import Tensor


def _backend(device: Any):
    return for_device(device)


def _shape(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and not isinstance(size[0], numbers.Integral):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 0:
            raise ValueError(f"size must be non-negative ints, got {size!r}")
    return tuple(int(s) for s in size)


def _dtype(dtype: Any, default: Any = np.float32) -> np.dtype:
    return np.dtype(default if dtype is None else dtype)


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new Tensor holding a copy of ``data`` (a number, nested list, numpy/cupy array or Tensor).
    Python floats become float32 (PyTorch's default); arrays keep their dtype unless ``dtype`` is given."""
    be = _backend(device)
    if isinstance(data, Tensor):
        data = data.data
    if array_kind(data) is None:
        host = np.asarray(data)
        if dtype is None and host.dtype == np.float64:
            host = host.astype(np.float32)
        data = host
    array = be.asarray(data, dtype=None if dtype is None else np.dtype(dtype))
    if array is data or getattr(array, "base", None) is not None:
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a Tensor without a copy where it already is an array of the backend and dtype."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    be = _backend(device)
    if isinstance(data, Tensor):
        data = data.data
    if array_kind(data) is None:
        host = np.asarray(data)
        if dtype is None and host.dtype == np.float64 and not isinstance(data, np.ndarray):
            host = host.astype(np.float32)
        data = host
    return Tensor(be.asarray(data, dtype=None if dtype is None else np.dtype(dtype)))


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(_backend(device).xp.zeros(_shape(size), _dtype(dtype)), requires_grad=requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(_backend(device).xp.ones(_shape(size), _dtype(dtype)), requires_grad=requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(_backend(device).xp.empty(_shape(size), _dtype(dtype)), requires_grad=requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = np.float32 if isinstance(fill_value, float) else (np.bool_ if isinstance(fill_value, bool) else np.int64)
    return Tensor(_backend(device).xp.full(_shape((size,) if isinstance(size, numbers.Integral) else (size,)),
                                           fill_value, _dtype(dtype)), requires_grad=requires_grad)


def _generator():
    from ..random import default_generator
    return default_generator()


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
          generator: Any = None) -> Tensor:
    """Standard normal values from gpuconv's generator (``gpuconv.manual_seed``), or ``generator``."""
    rng = generator if generator is not None else _generator()
    host = rng.standard_normal(_shape(size)).astype(_dtype(dtype))
    return Tensor(_backend(device).asarray(host), requires_grad=requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
         generator: Any = None) -> Tensor:
    """Uniform values in [0, 1) from gpuconv's generator (``gpuconv.manual_seed``), or ``generator``."""
    rng = generator if generator is not None else _generator()
    host = rng.random(_shape(size)).astype(_dtype(dtype))
    return Tensor(_backend(device).asarray(host), requires_grad=requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if is_int else np.float32
    return Tensor(_backend(device).xp.arange(start, end, step, dtype=np.dtype(dtype)), requires_grad=requires_grad)


def _like(t: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype, Any]:
    array = t.data if isinstance(t, Tensor) else t
    from ._util import xp_of
    return tuple(array.shape), np.dtype(array.dtype if dtype is None else dtype), xp_of(array)


def zeros_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, xp = _like(t, dtype)
    return Tensor(xp.zeros(shape, dt), requires_grad=requires_grad)


def ones_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, xp = _like(t, dtype)
    return Tensor(xp.ones(shape, dt), requires_grad=requires_grad)


def empty_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, xp = _like(t, dtype)
    return Tensor(xp.empty(shape, dt), requires_grad=requires_grad)


def full_like(t: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, xp = _like(t, dtype)
    return Tensor(xp.full(shape, fill_value, dt), requires_grad=requires_grad)


def randn_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, xp = _like(t, dtype)
    host = _generator().standard_normal(shape).astype(dt)
    return Tensor(xp.asarray(host), requires_grad=requires_grad)


def rand_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, xp = _like(t, dtype)
    host = _generator().random(shape).astype(dt)
    return Tensor(xp.asarray(host), requires_grad=requires_grad)
