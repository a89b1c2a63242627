"""A backend's own primitives run on shapes only: the memory estimator's fallback for a primitive its
shape-only backend (:mod:`gpuconv.memory._meta`) has no method for.

The primitive's real code runs on :class:`~gpuconv.backend.meta_array.MetaArray` s, so every array it
makes, its results and its temporaries, is counted by the ledger from its creation until Python frees
it, exactly as the code allocates it:

- ``cupy`` and ``emulated``: the launchers of :mod:`gpuconv.backend.cuda` (:class:`ShapeOnlyLaunchers`),
  whose ``empty``/``zeros`` make meta arrays and whose kernels launch nothing;
- ``numpy``: the numpy backend's method, its code run with its module's ``np`` standing for the meta
  arrays' namespace (:func:`numpy_on_shapes`), so that ``np.zeros(shape)`` makes a meta array too.

A primitive that reads values (a flag read back, an address) or uses what meta arrays do not
implement cannot run on shapes: :func:`shape_only_primitive` lets the exception through and the
estimator reports it as an op it cannot estimate.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any, Callable

import numpy as np

from .base import Backend
from .cuda.backend import CudaBackend
from .meta_array import MetaArray, _asarray, meta_namespace
from .numpy.backend import NumpyBackend

__all__ = ["ShapeOnlyArrays", "ShapeOnlyLaunchers", "numpy_on_shapes", "shape_only_primitive"]


class _NoLaunch:
    """A kernel that runs nothing (its outputs are meta arrays: there is nothing to write)."""

    def __call__(self, grid: Any, block: Any, args: Any, shared_mem: int = 0, **kwargs: Any) -> None:
        return None


class _NoModule:
    def get_function(self, name: str) -> _NoLaunch:
        return _NoLaunch()


class ShapeOnlyArrays:
    """The array methods of a backend whose arrays are meta arrays (shapes and dtypes, no values):
    the memory estimator's MetaBackend (gpuconv/memory/_meta.py) and :class:`ShapeOnlyLaunchers`."""

    name = "meta"
    xp = meta_namespace
    checks_requests = False

    def is_native(self, a: Any) -> bool:
        return isinstance(a, MetaArray)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return _asarray(a, dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)  # raises: a meta array has no values

    def empty(self, shape, dtype) -> Any:
        return MetaArray.new(shape, dtype)

    def zeros(self, shape, dtype) -> Any:
        return MetaArray.new(shape, dtype)


class ShapeOnlyLaunchers(ShapeOnlyArrays, CudaBackend):
    """The cupy/emulated launch code on meta arrays: it allocates what it allocates, launches nothing."""

    def module(self, filename: str, defines: dict | None = None) -> _NoModule:
        return _NoModule()

    def launch_reaching(self, kernel, grid, block, args: tuple, reachable: Callable[[], list]) -> None:
        return None


def _module_on_shapes(module_name: str) -> dict:
    """A copy of module ``module_name``'s namespace whose ``np`` is the meta namespace and whose
    functions (the module's own, so that helpers calling helpers stay in the copy) read that copy.
    Made per call, so that it sees the module's globals as they are now."""
    namespace = dict(vars(sys.modules[module_name]))
    namespace["np"] = meta_namespace
    for name, value in list(namespace.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == module_name:
            namespace[name] = _rebound(value, namespace)
    return namespace


def _rebound(function: types.FunctionType, namespace: dict) -> types.FunctionType:
    copy = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                              function.__closure__)
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


class _NumpyOnShapes:
    """``self`` of a numpy backend method run on shapes: its other methods run on shapes too."""

    name = "meta"
    xp = meta_namespace

    def __getattr__(self, name: str) -> Any:
        return numpy_on_shapes(name, self)


def numpy_on_shapes(name: str, instance: Any = None) -> Any:
    """The numpy backend's attribute ``name`` with its code run on meta arrays (see the module
    docstring); a method is bound to ``instance`` (a fresh stand-in for the backend by default)."""
    static = inspect.getattr_static(NumpyBackend, name)
    owner = next(cls for cls in NumpyBackend.__mro__ if name in vars(cls))
    function = static.__func__ if isinstance(static, (staticmethod, classmethod)) else static
    if not isinstance(function, types.FunctionType):
        return getattr(NumpyBackend, name)
    copy = _rebound(function, _module_on_shapes(owner.__module__))
    if isinstance(static, staticmethod):
        return copy
    return types.MethodType(copy, _NumpyOnShapes() if instance is None else instance)


_LAUNCHERS: dict[str, ShapeOnlyLaunchers] = {}
_TARGET_CLASSES = {"numpy": NumpyBackend, "emulated": CudaBackend, "cupy": CudaBackend}


def _is_primitive(cls: type, name: str) -> bool:
    """Whether ``name`` is an op of ``cls`` (defined by one of its op mixins, not by the backend
    machinery of Backend/CudaBackend)."""
    if name.startswith("_"):
        return False
    owner = next((c for c in cls.__mro__ if name in vars(c)), None)
    if owner is None or owner in (Backend, CudaBackend, NumpyBackend, object):
        return False
    return callable(vars(owner)[name]) or isinstance(vars(owner)[name], staticmethod)


def shape_only_primitive(target: str, name: str) -> Callable | None:
    """Primitive ``name`` of backend ``target`` ("numpy", "emulated" or "cupy") running its own code on
    meta arrays, or None when that backend has no such primitive."""
    cls = _TARGET_CLASSES[target]
    if not _is_primitive(cls, name):
        return None
    if target == "numpy":
        return numpy_on_shapes(name)
    if target not in _LAUNCHERS:
        _LAUNCHERS[target] = ShapeOnlyLaunchers()
    return getattr(_LAUNCHERS[target], name)
