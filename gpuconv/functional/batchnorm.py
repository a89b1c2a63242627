"""Batch normalization over (N, H, W) per channel, forward and backward (PyTorch semantics)."""

from __future__ import annotations

import numbers
from typing import Any, Protocol

import numpy as np

from ..backend import get_backend
from ._args import check_array
from ._memory import capabilities, check_request, nbytes, numpy_buffer_bytes
from ._dispatch import recorded


class BatchNormPrimitives(Protocol):
    """The batch-normalization primitives of the backend contract (gpuconv/backend/base.py), over
    (N, C, H, W) C-contiguous input per channel; statistics are float32/float64 (C,) vectors."""

    def batch_norm_train(self, x: Any, eps: float, running_mean: Any, running_var: Any, momentum: float,
                         weight: Any, bias: Any) -> tuple[Any, Any, Any]:
        """(y, mean, invstd) from the batch's statistics, updating the running ones in place."""

    def batch_norm_affine(self, x: Any, mean: Any, src: Any, src_is_var: bool, weight: Any, bias: Any,
                          eps: float) -> Any:
        """y = (x - mean) * invstd * weight + bias, invstd from ``src`` (a variance when
        ``src_is_var``, else invstd itself)."""

    def batch_norm_backward(self, dy: Any, x: Any, mean: Any, invstd: Any, weight: Any, training: bool,
                            need_dx: bool, need_sums: bool) -> tuple[Any, Any]:
        """(dx or None, (sum dy, sum dy * xhat) per channel or None)."""


def _check_vector(v, name: str, channels: int, dtype) -> None:
    if v is None:
        return
    check_array(v, name, 1, "(C,)")
    if v.shape[0] != channels:
        raise ValueError(f"{name} must have shape ({channels},) for x with {channels} channels, got {tuple(v.shape)}")
    if v.dtype != dtype:
        raise TypeError(f"{name} has dtype {v.dtype} but x has dtype {dtype}; they must match")
    if not v.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (it may be updated in place)")


# PyTorch's F.batch_norm takes (N, C), (N, C, L) and (N, C, H, W); the kernels see (N, C, H, W).
_LAYOUT = "(N, C), (N, C, L) or (N, C, H, W)"


def _as_4d(a: Any) -> Any:
    """``a`` of 2-4 dimensions viewed as (N, C, H, W): (N, C) as (N, C, 1, 1), (N, C, L) as (N, C, L, 1)."""
    return a.reshape(tuple(a.shape) + (1,) * (4 - a.ndim))


def _channels(x) -> int:
    if x.shape[1] < 1:
        raise ValueError(f"x must have at least one channel (C >= 1), got shape {tuple(x.shape)}")
    return int(x.shape[1])


def _check_number(value, name: str, low: float = 0.0, high: float | None = None) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < low \
            or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")
    return float(value)


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: float | None = 0.1, eps: float = 1e-5, *,
               num_batches_tracked: int | None = None, return_stats: bool = False):
    """Batch normalization: y = (x - mean) / sqrt(var + eps) * weight + bias per channel.

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W), as PyTorch's ``F.batch_norm`` (statistics over every
            axis but C).
        running_mean, running_var: (C,) or None (track_running_stats=False). In training they are
            updated in place: r = (1 - momentum) * r + momentum * batch_stat, with the unbiased
            variance into running_var. momentum=None is a cumulative average with factor
            1 / num_batches_tracked (the count after the caller incremented it).
        weight, bias: (C,) or None (affine=False).
        training: use batch statistics (biased variance); otherwise the running ones. Without
            running statistics the batch statistics are used in eval too, as in PyTorch.
        return_stats: also return (save_mean, save_invstd), each (C,), for
            :func:`batch_norm_backward`: the statistics the normalization used.
    Returns:
        y of x's shape [, save_mean, save_invstd].
    """
    check_array(x, "x", (2, 3, 4), _LAYOUT)
    input_shape = tuple(x.shape)
    x = _as_4d(x)
    channels = _channels(x)
    for name, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_vector(v, name, channels, x.dtype)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays or both be None, got "
                         f"running_mean={'None' if running_mean is None else 'array'}, "
                         f"running_var={'None' if running_var is None else 'array'}")
    eps = _check_number(eps, "eps")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    use_batch_stats = bool(training) or running_mean is None
    factor = 0.0
    if bool(training) and running_mean is not None:
        if momentum is None:
            if not isinstance(num_batches_tracked, numbers.Integral) or num_batches_tracked < 1:
                raise ValueError("num_batches_tracked must be a positive int (the count after this batch) when "
                                 f"momentum is None, got {num_batches_tracked!r}")
            factor = 1.0 / int(num_batches_tracked)
        else:
            factor = _check_number(momentum, "momentum", 0.0, 1.0)
    if use_batch_stats and x.shape[0] * x.shape[2] * x.shape[3] < 2:
        raise ValueError(f"batch_norm with batch statistics needs more than 1 value per channel, got x of shape "
                         f"{input_shape}")
    be = get_backend()
    check_request("batch_norm", nbytes(x.shape, x.dtype) + batch_norm_transient_bytes(x.shape, x.dtype, "forward",
                                                                                        be),
                  "the output and the statistics' temporaries")
    x = be.xp.ascontiguousarray(x)
    if use_batch_stats:
        update = bool(training) and running_mean is not None
        y, mean, invstd = be.batch_norm_train(x, eps, running_mean if update else None,
                                              running_var if update else None, factor, weight, bias)
    else:
        y = be.batch_norm_affine(x, running_mean, running_var, True, weight, bias, eps)
        if return_stats:
            mean = running_mean.copy()
            invstd = (1.0 / be.xp.sqrt(running_var + eps)).astype(x.dtype)
    y = y.reshape(input_shape)
    return (y, mean, invstd) if return_stats else y


def batch_norm_backward(dy: Any, x: Any, weight: Any, save_mean: Any, save_invstd: Any, training: bool = True,
                        needs=(True, True, True)):
    """Gradients of :func:`batch_norm`.

    Args:
        dy, x: (N, C), (N, C, L) or (N, C, H, W), the same shape; weight: (C,) or None;
            save_mean, save_invstd: (C,) from
            ``batch_norm(..., return_stats=True)``.
        training: whether the forward used batch statistics (then they depend on x); False for a
            forward that used the running statistics.
        needs: (dx, dweight, dbias) flags; an entry not needed is returned as None. dweight =
            sum(dy * xhat) and dbias = sum(dy) per channel are computed when asked, with or without
            a weight.
    Returns:
        (dx of x's shape, dweight (C,), dbias (C,)).
    """
    check_array(x, "x", (2, 3, 4), _LAYOUT)
    check_array(dy, "dy", (2, 3, 4), _LAYOUT)
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(f"dy must have x's shape {tuple(x.shape)}, got {tuple(dy.shape)}")
    input_shape = tuple(x.shape)
    x, dy = _as_4d(x), _as_4d(dy)
    if dy.dtype != x.dtype:
        raise TypeError(f"dy has dtype {dy.dtype} but x has dtype {x.dtype}; they must match")
    channels = _channels(x)
    for name, v in (("weight", weight), ("save_mean", save_mean), ("save_invstd", save_invstd)):
        if v is None and name != "weight":
            raise TypeError(f"{name} must be a ({channels},) array, got None")
        _check_vector(v, name, channels, x.dtype)
    if not isinstance(needs, (tuple, list)) or len(needs) != 3:
        raise TypeError(f"needs must be a tuple of 3 bools, got {needs!r}")
    need_dx, need_dweight, need_dbias = (bool(v) for v in needs)
    be = get_backend()
    check_request("batch_norm_backward", (nbytes(x.shape, x.dtype) if need_dx else 0)
                  + batch_norm_transient_bytes(x.shape, x.dtype, "backward", be, need_dx),
                  "dx and the per-channel sums' temporaries")
    x, dy = be.xp.ascontiguousarray(x), be.xp.ascontiguousarray(dy)
    dx, sums = be.batch_norm_backward(dy, x, save_mean, save_invstd, weight, bool(training), need_dx,
                                      need_dweight or need_dbias or (need_dx and bool(training)))
    dweight = sums[1] if need_dweight else None
    dbias = sums[0] if need_dbias else None
    return None if dx is None else dx.reshape(input_shape), dweight, dbias


__all__ = ["batch_norm", "batch_norm_backward"]
recorded("batch_norm")


def batch_norm_transient_bytes(x_shape: tuple[int, ...], dtype: Any, direction: str, backend: Any,
                               needs_dx: bool = True) -> int:
    """Bytes :func:`batch_norm` (``direction="forward"``, training or eval) or
    :func:`batch_norm_backward` (``"backward"``) allocates above its results at its peak, for an
    input of ``x_shape``.

    numpy: the statistics centre a full copy of x, freed before y is allocated, and the backward
    sums read ``x - mean``, freed before dx is allocated: each is as large as the result, so it adds
    nothing to the peak, except in a backward without dx (the network's first layer), where
    ``x - mean`` is the peak; the per-channel reductions (einsum) add one iterator buffer of up to
    ``np.getbufsize()`` elements. cupy/emulated: only (C, splits) partial sums, a few values per
    channel (not counted, nor are the (C,) vectors).
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if capabilities(backend).kernels:
        return 0
    n, c, h, w = (int(v) for v in x_shape)
    itemsize = np.dtype(dtype).itemsize
    buffer = numpy_buffer_bytes(n * c * h * w, itemsize)
    if direction == "backward" and not needs_dx:
        return n * c * h * w * itemsize + buffer
    return buffer
