"""Group normalization, PyTorch's ``F.group_norm``, forward and backward, as array expressions.

Channels are split into ``num_groups`` groups; each (sample, group) is normalized by its own mean
and biased variance over the group's channels and all spatial positions, then scaled and shifted
per channel.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend
from ._args import check_array, int_arg, same_dtype
from ._common import check_needs, check_real, check_same_shape
from ._memory import check_request, nbytes
from ._dispatch import recorded


def _check(x: Any, num_groups: Any, weight: Any, bias: Any) -> int:
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be (N, C, *), got shape {tuple(x.shape)}")
    if int_arg(num_groups, "num_groups") < 1:
        raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
    channels = x.shape[1]
    if math.prod(x.shape[1:]) == 0:
        raise ValueError(f"x must have at least one element per group (C and every spatial size >= 1), got shape "
                         f"{tuple(x.shape)}")
    if channels % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide the channels of x, got C={channels} "
                         f"(x shape {tuple(x.shape)})")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            check_array(value, name, 1, "(C,)")
            same_dtype("x", x, **{name: value})
            if value.shape[0] != channels:
                raise ValueError(f"{name} must have shape ({channels},) (one per channel), got {tuple(value.shape)}")
    return int(num_groups)


def _grouped(a: Any, groups: int) -> Any:
    """(N, C, *) as (N, groups, elements per group); explicit sizes, as -1 fails for N = 0."""
    return a.reshape(a.shape[0], groups, math.prod(a.shape[1:]) // groups)


def _per_channel(v: Any, ndim: int) -> Any:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def group_norm(x: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5, *,
               return_stats: bool = False) -> Any:
    """(x - mean) / sqrt(var + eps) per (sample, group), then * weight + bias per channel.

    Args:
        x: (N, C, *) with C divisible by ``num_groups``.
        weight, bias: (C,) or None.
        return_stats: also return mean and 1/std, each (N, num_groups), for :func:`group_norm_backward`.
    Returns:
        y with x's shape and dtype, or (y, mean, invstd).
    """
    groups = _check(x, num_groups, weight, bias)
    eps = check_real(eps, "eps", finite=True)
    if eps <= 0:  # as batch norm: a constant group would give 1 / sqrt(0) and NaN outputs
        raise ValueError(f"eps must be > 0, got {eps!r}")
    check_request("group_norm", 2 * nbytes(x.shape, x.dtype), "the result and the centered copy of x")
    xp = get_backend().xp
    xg = _grouped(x, groups)
    mean = xg.mean(axis=2)
    centered = xg - mean[:, :, None]
    # Two passes (mean, then the mean of squared deviations): no cancellation in float32.
    var = (centered * centered).mean(axis=2)
    invstd = (1 / xp.sqrt(var + x.dtype.type(eps))).astype(x.dtype, copy=False)
    y = (centered * invstd[:, :, None]).reshape(x.shape)
    if weight is not None:
        y = y * _per_channel(weight, x.ndim)
    if bias is not None:
        y = y + _per_channel(bias, x.ndim)
    y = y.astype(x.dtype, copy=False)
    return (y, mean, invstd) if return_stats else y


def group_norm_backward(dy: Any, x: Any, num_groups: int, weight: Any, mean: Any, invstd: Any,
                        needs=(True, True, True)) -> tuple[Any, Any, Any]:
    """Gradients of :func:`group_norm` given the forward's ``mean`` and ``invstd`` (N, num_groups).

    Returns:
        (dx with x's shape, dweight (C,), dbias (C,)); None where ``needs`` is False.
    """
    groups = _check(x, num_groups, weight, None)
    check_same_shape("x", x, "dy", dy)
    need_dx, need_dw, need_db = check_needs(needs, 3)
    check_request("group_norm_backward", nbytes(x.shape, x.dtype), "the normalized copy of x")
    n, c = x.shape[:2]
    expected = (n, groups)
    for name, value in (("mean", mean), ("invstd", invstd)):
        check_array(value, name)
        if tuple(value.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} (N, num_groups), got {tuple(value.shape)}")
    reduce_axes = (0,) + tuple(range(2, x.ndim))
    xhat = ((_grouped(x, groups) - mean[:, :, None]) * invstd[:, :, None]).reshape(x.shape)
    dweight = (dy * xhat).sum(axis=reduce_axes) if need_dw else None
    dbias = dy.sum(axis=reduce_axes) if need_db else None
    dx = None
    if need_dx:
        dxhat = dy * _per_channel(weight, x.ndim) if weight is not None else dy
        dxg, xg = _grouped(dxhat, groups), _grouped(xhat, groups)
        dx = (invstd[:, :, None] * (dxg - dxg.mean(axis=2, keepdims=True)
                                    - xg * (dxg * xg).mean(axis=2, keepdims=True))).reshape(x.shape)
        dx = dx.astype(x.dtype, copy=False)
    return dx, dweight, dbias


__all__ = ["group_norm", "group_norm_backward"]
recorded("group_norm")
