"""Layer normalization (PyTorch's ``F.layer_norm``), forward and backward, as array expressions."""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend
from ._args import check_array, is_int, same_dtype, shape_arg
from ._common import check_needs, check_real
from ._memory import check_request, nbytes
from ._dispatch import recorded


def _normalized_shape(normalized_shape: Any) -> tuple[int, ...]:
    if is_int(normalized_shape):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list)) or len(normalized_shape) == 0:
        raise TypeError(f"normalized_shape must be a positive int or a non-empty tuple of positive ints, "
                        f"got {normalized_shape!r}")
    return shape_arg(normalized_shape, "normalized_shape")


def _check_x(x: Any, normalized_shape: Any) -> tuple[tuple[int, ...], int, int]:
    """(normalized_shape, M rows, D normalized elements per row)."""
    check_array(x, "x")
    shape = _normalized_shape(normalized_shape)
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"x: trailing dimensions must equal normalized_shape {shape}, got x shape {tuple(x.shape)}")
    d = math.prod(shape)
    return shape, x.size // d, d


def _check_affine(x: Any, shape: tuple[int, ...], **params: Any) -> None:
    for name, value in params.items():
        if value is None:
            continue
        check_array(value, name)
        same_dtype("x", x, **{name: value})
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} must have shape normalized_shape {shape}, got {tuple(value.shape)}")


def layer_norm(x: Any, normalized_shape: int | tuple[int, ...], weight: Any = None, bias: Any = None,
               eps: float = 1e-5, *, return_stats: bool = False) -> Any:
    """Normalizes over the trailing ``normalized_shape`` dimensions: (x - mean) / sqrt(var + eps) * weight + bias.

    Args:
        x: (..., *normalized_shape), float32 or float64.
        normalized_shape: int or tuple, the trailing dimensions to normalize over.
        weight, bias: normalized_shape-shaped, or None.
        eps: added to the biased variance.
        return_stats: also return the per-row mean and 1/sqrt(var + eps), shaped
            x.shape[:-k] + (1,) * k (k = len(normalized_shape)) as PyTorch's native_layer_norm.
    Returns:
        y with x's shape, or (y, save_mean, save_invstd).
    """
    shape, m, d = _check_x(x, normalized_shape)
    _check_affine(x, shape, weight=weight, bias=bias)
    eps = check_real(eps, "eps", finite=True)
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    # y and the centered copy of x are alive together (a lower bound of the peak: never a false alarm)
    check_request("layer_norm", 2 * nbytes(x.shape, x.dtype), "the output and the centered copy of x")
    xp = get_backend().xp
    x2 = x.reshape(m, d)
    # Two passes (mean, then mean of squared deviations) over data shifted by a sample of its row:
    # a row with a large mean (1e4, std 1, float32) is centered without ever rounding its mean to
    # x's precision, so the result does not depend on how the backend sums (CuPy's GPU reductions
    # lost 1e-3 there where NumPy's pairwise sums did not).
    pivot = x2[:, :1]
    centered = x2 - pivot
    residual = centered.mean(axis=1, keepdims=True)
    centered -= residual  # in place: no temporary beyond what the two-pass formula had
    mean = pivot + residual
    var = (centered * centered).mean(axis=1, keepdims=True)
    invstd = 1 / xp.sqrt(var + x.dtype.type(eps))
    y = centered * invstd
    if weight is not None:
        y = y * weight.reshape(1, d)
    if bias is not None:
        y = y + bias.reshape(1, d)
    y = y.reshape(x.shape)
    if not return_stats:
        return y
    stats_shape = tuple(x.shape[:x.ndim - len(shape)]) + (1,) * len(shape)
    return y, mean.reshape(stats_shape), invstd.reshape(stats_shape)


def layer_norm_backward(dy: Any, x: Any, normalized_shape: int | tuple[int, ...], weight: Any, save_mean: Any,
                        save_invstd: Any, needs: tuple[bool, bool, bool] = (True, True, True)) -> tuple[Any, Any, Any]:
    """Gradients of :func:`layer_norm`.

    Args:
        dy, x: (..., *normalized_shape). weight: normalized_shape-shaped or None.
        save_mean, save_invstd: the statistics :func:`layer_norm` returned with ``return_stats=True``
            (any shape with one element per normalized row).
        needs: which of (dx, dweight, dbias) to compute; the others are returned as None
            (dweight is None as well when weight is None).
    Returns:
        (dx with x's shape, dweight and dbias with normalized_shape).
    """
    shape, m, d = _check_x(x, normalized_shape)
    check_array(dy, "dy")
    same_dtype("x", x, dy=dy)
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(f"dy must have x's shape {tuple(x.shape)}, got {tuple(dy.shape)}")
    _check_affine(x, shape, weight=weight)
    for name, value in (("save_mean", save_mean), ("save_invstd", save_invstd)):
        check_array(value, name)
        if value.size != m:
            raise ValueError(f"{name} must have one element per normalized row ({m}), got shape {tuple(value.shape)}")
    need_dx, need_dw, need_db = check_needs(needs, 3)
    # xhat, and dx with the centered gradient when dx is needed, are as large as x
    check_request("layer_norm_backward", (3 if need_dx else 1) * nbytes(x.shape, x.dtype),
                  "x-sized temporaries (xhat" + (", dx and the centered gradient)" if need_dx else ")"))
    x2, dy2 = x.reshape(m, d), dy.reshape(m, d)
    mean, invstd = save_mean.reshape(m, 1), save_invstd.reshape(m, 1)
    xhat = (x2 - mean) * invstd
    dx = dweight = dbias = None
    if need_dx:
        g = dy2 * weight.reshape(1, d) if weight is not None else dy2
        dx = (invstd * (g - g.mean(axis=1, keepdims=True)
                        - xhat * (g * xhat).mean(axis=1, keepdims=True))).reshape(x.shape)
    if need_dw and weight is not None:
        dweight = (dy2 * xhat).sum(axis=0).reshape(shape)
    if need_db:
        dbias = dy2.sum(axis=0).reshape(shape)
    return dx, dweight, dbias


__all__ = ["layer_norm", "layer_norm_backward"]
recorded("layer_norm")
