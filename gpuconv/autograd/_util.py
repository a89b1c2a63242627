"""Small helpers shared by the autograd modules: the array module of an array, broadcasting's
reverse (``sum_to``), and turning operands into (array, Tensor-or-None) pairs."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..backend.meta_array import MetaArray, meta_namespace


def xp_of(a: Any) -> ModuleType:
    """numpy for host arrays, cupy for device arrays (imported only when one exists), the memory
    estimator's meta namespace for its shape-only arrays."""
    if isinstance(a, (np.ndarray, np.generic)):
        return np
    if isinstance(a, MetaArray):
        return meta_namespace
    import cupy
    return cupy


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """``g`` summed over the axes that broadcasting added or stretched, back to ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, size in enumerate(shape) if size == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if lead:
        g = g.reshape(g.shape[lead:])
    return g.reshape(shape)


def is_float(a: Any) -> bool:
    return np.dtype(a.dtype).kind == "f"
