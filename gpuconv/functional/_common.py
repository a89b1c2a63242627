"""Argument checks shared by the array-expression ops (activations, losses, linear, layer_norm, dropout)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..backend import get_backend
from ._args import check_array

REDUCTIONS = ("mean", "sum", "none")


def check_same_shape(reference_name: str, reference: Any, name: str, value: Any) -> Any:
    """``value`` checked as a float array of the current backend with ``reference``'s shape and dtype."""
    check_array(value, name)
    if tuple(value.shape) != tuple(reference.shape):
        raise ValueError(f"{name} must have the shape of {reference_name} {tuple(reference.shape)}, "
                         f"got {tuple(value.shape)}")
    if value.dtype != reference.dtype:
        raise TypeError(f"{name} has dtype {value.dtype} but {reference_name} has dtype {reference.dtype}; "
                        "they must match")
    return value


def check_dim(dim: Any, ndim: int, name: str = "dim") -> int:
    """``dim`` as a non-negative axis of an ``ndim``-D array (negative counts from the end)."""
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{name} must be an int, got {dim!r}")
    if ndim < 1:
        raise ValueError(f"the input must have at least 1 dimension for {name}, got a 0-D array")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name} must be in [{-ndim}, {ndim - 1}] for a {ndim}-D input, got {dim}")
    return int(dim) % ndim


def check_real(value: Any, name: str, *, finite: bool = False) -> float:
    """``value`` as a float: a real number (Python or NumPy, not a bool); ``finite`` also rejects
    NaN and infinities (ValueError)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    result = float(value)
    if finite and not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result!r}")
    return result


def scalar_grad(dloss: Any, reduction: str, dtype: Any) -> Any:
    """The gradient of a reduced ("mean", "sum") loss as a 0-D backend array of ``dtype``: a real
    number or a one-element array of the current backend (kept on the device: no host sync)."""
    be = get_backend()
    if isinstance(dloss, numbers.Real) and not isinstance(dloss, (bool, np.bool_)):
        return be.xp.asarray(float(dloss), dtype=dtype)
    if isinstance(dloss, np.generic) or not (hasattr(dloss, "shape") and hasattr(dloss, "dtype")):
        raise TypeError(f"dloss must be a real number or a one-element array, got {dloss!r}")
    be.check_native("dloss", dloss)
    if dloss.size != 1:
        raise ValueError(f"dloss must be a scalar for reduction={reduction!r}, got shape {tuple(dloss.shape)}")
    if np.dtype(dloss.dtype).kind not in "fiu":
        raise TypeError(f"dloss must hold a real number, got dtype {dloss.dtype}")
    return dloss.reshape(()).astype(dtype, copy=False)


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    return reduction


def check_needs(needs: Any, count: int) -> tuple[bool, ...]:
    if not isinstance(needs, (tuple, list)) or len(needs) != count:
        raise ValueError(f"needs must be a tuple of {count} bools, got {needs!r}")
    return tuple(bool(n) for n in needs)
