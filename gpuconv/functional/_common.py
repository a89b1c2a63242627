"""Argument checks shared by the array-expression ops (activations, losses, linear, layer_norm, dropout)."""

from __future__ import annotations

import numbers
from typing import Any

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


def check_real(value: Any, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    return reduction


def check_needs(needs: Any, count: int) -> tuple[bool, ...]:
    if not isinstance(needs, (tuple, list)) or len(needs) != count:
        raise ValueError(f"needs must be a tuple of {count} bools, got {needs!r}")
    return tuple(bool(n) for n in needs)
