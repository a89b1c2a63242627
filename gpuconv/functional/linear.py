"""Fully connected layer: y = x W^T + b, forward and backward, through the backend's 2-D GEMM."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import get_backend
from ._memory import capabilities, check_request, nbytes, numpy_buffer_bytes
from ._args import check_array, same_dtype
from ._common import check_needs
from ._dispatch import recorded


def _check(x: Any, weight: Any) -> tuple[int, int]:
    check_array(x, "x")
    check_array(weight, "weight", 2, "(out_features, in_features)")
    same_dtype("x", x, weight=weight)
    if x.ndim < 1:
        raise ValueError("x must have at least 1 dimension (..., in_features), got a 0-D array")
    out_features, in_features = weight.shape
    if x.shape[-1] != in_features:
        raise ValueError(f"x: last dimension must equal weight's in_features {in_features}, "
                         f"got x shape {tuple(x.shape)} and weight shape {tuple(weight.shape)}")
    return out_features, in_features


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """y = x @ weight.T + bias.

    Args:
        x: (..., in_features), float32 or float64 (any number of leading dimensions, or none).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
    Returns:
        (..., out_features).
    """
    out_features, in_features = _check(x, weight)
    if bias is not None:
        check_array(bias, "bias", 1, "(out_features,)")
        same_dtype("x", x, bias=bias)
        if bias.shape[0] != out_features:
            raise ValueError(f"bias must have shape ({out_features},), got {tuple(bias.shape)}")
    be = get_backend()
    rows = math.prod(x.shape[:-1])  # NOTE: not reshape(-1, ...): that fails for in_features == 0
    check_request("linear", nbytes((rows, out_features), x.dtype), "the output")
    x2 = be.xp.ascontiguousarray(x.reshape(rows, in_features))
    y = be.matmul(x2, weight.T)
    if bias is not None:
        be.bias_add_(y, be.xp.ascontiguousarray(bias))
    return y.reshape(tuple(x.shape[:-1]) + (out_features,))


def linear_backward(dy: Any, x: Any, weight: Any,
                    needs: tuple[bool, bool, bool] = (True, True, True)) -> tuple[Any, Any, Any]:
    """Gradients of :func:`linear`.

    Args:
        dy: (..., out_features), the gradient of y.
        x: (..., in_features), the forward's input. weight: (out_features, in_features).
        needs: which of (dx, dweight, dbias) to compute; the others are returned as None.
    Returns:
        (dx with x's shape, dweight (out_features, in_features), dbias (out_features,)).
    """
    out_features, in_features = _check(x, weight)
    check_array(dy, "dy")
    same_dtype("x", x, dy=dy)
    expected = tuple(x.shape[:-1]) + (out_features,)
    if tuple(dy.shape) != expected:
        raise ValueError(f"dy must have shape {expected} (x's leading dimensions, out_features), "
                         f"got {tuple(dy.shape)}")
    need_dx, need_dw, need_db = check_needs(needs, 3)
    be = get_backend()
    rows = math.prod(x.shape[:-1])
    check_request("linear_backward", (nbytes(x.shape, x.dtype) if need_dx else 0)
                  + (nbytes(weight.shape, x.dtype) if need_dw else 0), "dx and dweight")
    dy2 = be.xp.ascontiguousarray(dy.reshape(rows, out_features))
    dx = be.matmul(dy2, weight).reshape(x.shape) if need_dx else None
    dweight = be.matmul(dy2.T, be.xp.ascontiguousarray(x.reshape(rows, in_features))) if need_dw else None
    dbias = be.sum_except_channel(dy2, axis=1) if need_db else None
    return dx, dweight, dbias


def linear_transient_bytes(x_shape: tuple[int, ...], out_features: int, dtype: Any, direction: str, backend: Any,
                           bias: bool = True) -> int:
    """Bytes :func:`linear` (``direction="forward"``) or :func:`linear_backward` (``"backward"``)
    allocates above its results: the GEMMs write their results directly (contiguous inputs are not
    copied); on the numpy backend ``y += bias`` broadcasts through one iterator buffer of up to
    ``np.getbufsize()`` elements (cupy and emulated: one kernel adds it in place)."""
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if direction == "backward" or not bias or capabilities(backend).kernels:
        return 0
    rows = 1
    for size in tuple(x_shape)[:-1]:
        rows *= int(size)
    return numpy_buffer_bytes(rows * int(out_features), np.dtype(dtype).itemsize)


__all__ = ["linear", "linear_backward"]
recorded("linear")
