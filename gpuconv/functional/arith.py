"""Sums of two arrays: the residual add of ResNet blocks and of custom modules, and the sum of two
gradients that reach the same array in a backward."""

from __future__ import annotations

from typing import Any, Protocol

from ..backend import get_backend
from ._args import check_array, same_dtype
from ._common import check_same_shape
from ._memory import check_request, nbytes
from ._dispatch import recorded


class ArithPrimitives(Protocol):
    """The arithmetic primitives of the backend contract (gpuconv/backend/base.py): sums, copies and
    fills on whole arrays, used by these ops, the autograd engine, the optimizers and the layers."""

    def add(self, a: Any, b: Any) -> Any:
        """``a + b`` for same-shape, same-dtype arrays: a new contiguous array."""

    def add_(self, a: Any, b: Any) -> Any:
        """``a += b`` in place (gradient accumulation); returns ``a``."""

    def bias_add_(self, y: Any, bias: Any) -> Any:
        """``y += bias`` along the last axis of a 2-D ``y`` in place; returns ``y``."""

    def contiguous(self, a: Any) -> Any:
        """``a`` itself when C-contiguous, else a C-contiguous copy."""

    def copy_into(self, dst: Any, src: Any) -> Any:
        """``dst[...] = src`` (same shape, same dtype); returns ``dst``."""

    def count_step(self, counter: Any) -> None:
        """Adds 1 to a one-element int64 counter in place (BatchNorm's num_batches_tracked)."""

    def fill_(self, a: Any, value: Any) -> Any:
        """Sets every element of ``a`` to ``value`` in place; returns ``a``."""

    def sum_except_channel(self, x: Any, axis: int = 1) -> Any:
        """Sums ``x`` over every axis but ``axis``: (C,) in x's dtype (a bias gradient)."""


def add(a: Any, b: Any) -> Any:
    """a + b elementwise, as a new array. One kernel on the cupy and emulated backends.

    Args:
        a, b: float32 or float64 arrays of the current backend, of one shape and dtype (any shape).
    Returns:
        The sum, with a's shape and dtype.
    """
    check_array(a, "a")
    check_same_shape("a", a, "b", b)
    same_dtype("a", a, b=b)
    check_request("add", nbytes(a.shape, a.dtype), "the result")
    be = get_backend()
    return be.add(be.contiguous(a), be.contiguous(b))


__all__ = ["add"]
recorded("add")
