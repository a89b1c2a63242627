"""Sums of two arrays: the residual add of ResNet blocks and of custom modules, and the sum of two
gradients that reach the same array in a backward."""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ._args import check_array, same_dtype
from ._common import check_same_shape
from ._memory import check_request, nbytes
from ._dispatch import recorded


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
