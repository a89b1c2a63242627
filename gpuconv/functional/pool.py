"""Pooling: max, average, adaptive average/max, LP and GeM, forward and backward (PyTorch semantics).

All ops take NCHW input of float32 or float64. Arguments are checked before any kernel runs.
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol

import numpy as np

from ..backend import get_backend
from ..backend.windows import is_pairwise
from ._common import check_real
from ._args import (check_array, check_int32, check_spatial, check_window_extent, int_arg, non_negative_pair,
                    positive_pair, same_dtype, shape_arg)
from ._memory import capabilities, check_request, nbytes, numpy_buffer_bytes
from .pool_integer import is_integer_image, max_pool2d_integer
from ._dispatch import autograd_form, recorded


class PoolPrimitives(Protocol):
    """The pooling primitives of the backend contract (gpuconv/backend/base.py), over (N, C, H, W)
    C-contiguous input; window arguments are validated pairs, ``out_size`` the (OH, OW) computed
    here, indices flat positions within an input plane."""

    def max_pool2d(self, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, out_size: Any,
                   with_indices: bool = True, index_dtype: Any = np.int64) -> Any:
        """(y, indices) with ``with_indices``, else y."""

    def max_pool2d_backward(self, dy: Any, indices: Any, x_shape: Any, kernel_size: Any, stride: Any,
                            padding: Any, dilation: Any, check_indices: bool = True) -> tuple[Any, bool]:
        """(dx: dy summed into the elements the indices chose, whether every index names an element
        of its window); with ``check_indices`` False the indices are known to (max_pool2d's own) and
        the second is True without a check."""

    def avg_pool2d(self, x: Any, kernel_size: Any, stride: Any, padding: Any, out_size: Any,
                   count_include_pad: bool, divisor_override: Any) -> Any:
        """y, PyTorch's divisor rule."""

    def avg_pool2d_backward(self, dy: Any, x_shape: Any, kernel_size: Any, stride: Any, padding: Any,
                            count_include_pad: bool, divisor_override: Any) -> Any:
        """dx."""

    def adaptive_avg_pool2d(self, x: Any, out_size: Any) -> Any:
        """y over bins floor(i*H/OH) .. ceil((i+1)*H/OH)."""

    def adaptive_avg_pool2d_backward(self, dy: Any, x_shape: Any) -> Any:
        """dx."""

    def adaptive_max_pool2d(self, x: Any, out_size: Any, index_dtype: Any = np.int64) -> tuple[Any, Any]:
        """(y, indices)."""

    def adaptive_max_pool2d_backward(self, dy: Any, indices: Any, x_shape: Any) -> Any:
        """dx (indices checked against their bins)."""

    def gem(self, x: Any, p: Any, eps: float, kernel_size: Any, stride: Any, out_size: Any) -> Any:
        """y = mean_window(max(x, eps)^p)^(1/p); ``p`` a one-element array."""

    def gem_backward(self, dy: Any, x: Any, p: Any, eps: float, kernel_size: Any, stride: Any, need_dx: bool,
                     need_dp: bool) -> tuple[Any, Any]:
        """(dx or None, dp or None)."""

    def lp_pool2d(self, x: Any, p: float, kernel_size: Any, stride: Any, out_size: Any) -> Any:
        """y = (avg(x^p) * K)^(1/p) over windows without padding, a ceil_mode window overhanging the
        input averaged over its elements inside (PyTorch's lp_pool2d)."""

    def lp_pool2d_backward(self, dy: Any, x: Any, p: float, kernel_size: Any, stride: Any) -> Any:
        """dx through PyTorch's formula (a window whose average is 0 passes nothing on)."""


def pool_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length; with ceil_mode the last window must start inside the input
    or the left padding (a window starting in the right padding is dropped)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _window_args(x, kernel_size, stride, padding, dilation, ceil_mode, what):
    k = positive_pair(kernel_size, "kernel_size")
    s = k if stride is None else positive_pair(stride, "stride")
    p = non_negative_pair(padding, "padding")
    d = positive_pair(dilation, "dilation")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {k}, got {p}")
    h, w = x[2:] if isinstance(x, tuple) else x.shape[2:]
    out = (pool_out_size(h, k[0], s[0], p[0], d[0], ceil_mode), pool_out_size(w, k[1], s[1], p[1], d[1], ceil_mode))
    if min(out) < 1:
        raise ValueError(f"{what}: output size {out} is too small (< 1) for input {h}x{w}, kernel_size {k}, "
                         f"stride {s}, padding {p}, dilation {d}")
    check_window_extent((h, w), k, s, (2 * p[0], 2 * p[1]), d, out, what)
    return k, s, p, d, out


def _shape4(x_shape, name: str) -> tuple[int, int, int, int]:
    return shape_arg(x_shape, name, 4)


def _check_output_like(dy, expected_shape, name="dy"):
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(f"{name} must have the forward output's shape {tuple(expected_shape)}, got {tuple(dy.shape)}")


_INDEX_DTYPES = (np.dtype(np.int64), np.dtype(np.int32))


def _index_dtype(index_dtype) -> np.dtype:
    """int64 (PyTorch's, the default) or int32 (half the bytes, for indices kept only for the backward)."""
    try:
        dtype = np.dtype(index_dtype)
    except TypeError:
        dtype = None
    if dtype not in _INDEX_DTYPES:
        raise TypeError(f"index_dtype must be int64 or int32, got {index_dtype!r}")
    return dtype


def _check_indices(indices, expected_shape):
    be = get_backend()
    be.check_native("indices", indices)
    if indices.dtype not in _INDEX_DTYPES:
        raise TypeError(f"indices must be int64 or int32 (from return_indices=True), got {indices.dtype}")
    if tuple(indices.shape) != tuple(expected_shape):
        raise ValueError(f"indices must have the output's shape {tuple(expected_shape)}, got {tuple(indices.shape)}")
    return be.xp.ascontiguousarray(indices)


def _raise_unless_valid(valid: bool, forward: str) -> None:
    # NOTE: checked by the backend as it computes (on the GPU a kernel sets a flag, read after the
    # gather): the message cannot name the offending index on every backend, so none does.
    if not valid:
        raise ValueError(f"indices: an index does not name an element of its window (out of range); pass the "
                         f"indices {forward}(..., return_indices=True) returned for the same x and arguments")


def _contiguous(a):
    return get_backend().xp.ascontiguousarray(a)


# ---- max pooling ---------------------------------------------------------------------------------
def max_pool2d(x: Any, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False, *, index_dtype=np.int64):
    """2-D max pooling; padding acts as -inf.

    Args:
        x: (N, C, H, W), float32 or float64, or an integer image (uint8, int16, ...: the result
            keeps its dtype, as PyTorch's CPU pooling; integer images have no backward).
        kernel_size, stride (default kernel_size), padding (at most kernel_size // 2), dilation:
            int or pair.
        ceil_mode: round the output size up (a last window that would start in the right padding
            is dropped, as in PyTorch).
        return_indices: also return the argmax positions.
        index_dtype: int64 (PyTorch's) or int32 (half the memory, for indices kept only for
            :func:`max_pool2d_backward`, which takes either).
    Returns:
        y (N, C, OH, OW), and with return_indices the flat index y*W + x of each maximum within
        its (H, W) plane (PyTorch's convention; the first maximum in window order).
    """
    integer = get_backend().is_native(x) and is_integer_image(x)
    if integer:
        if x.ndim != 4:
            raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    else:
        check_array(x, "x", 4, "(N, C, H, W)")
    k, s, p, d, out = _window_args(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    index_dtype = _index_dtype(index_dtype)
    y_shape = (*x.shape[:2], *out)
    check_request("max_pool2d", nbytes(y_shape, x.dtype) + (nbytes(y_shape, index_dtype) if return_indices else 0),
                  "the output" + (" and the indices" if return_indices else ""))
    if integer:
        y, indices = max_pool2d_integer(get_backend().xp, x, k, s, p, d, out, bool(return_indices), index_dtype)
        return (y, indices) if return_indices else y
    y, indices = get_backend().max_pool2d(_contiguous(x), k, s, p, d, out, with_indices=bool(return_indices),
                                          index_dtype=index_dtype)
    return (y, indices) if return_indices else y


def max_pool2d_backward(dy: Any, x: Any, indices: Any, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode: bool = False, *, check_indices: bool = True) -> Any:
    """Gradient of :func:`max_pool2d` w.r.t. x: each dy goes to the element its window chose.

    Args:
        dy: (N, C, OH, OW); x: the forward input (for its shape and dtype); indices: the int64
            indices from ``max_pool2d(..., return_indices=True)``.
        check_indices: False only for indices max_pool2d made and nobody could change since (the
            autograd node's own): skips the check that every index names an element of its window,
            which costs a pass over the indices on the CPU and a host sync on the GPU. An index
            outside its window is then not reported (the gather never writes outside dx).
    Returns:
        dx (N, C, H, W).
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    check_array(dy, "dy", 4, "(N, C, OH, OW)")
    same_dtype("x", x, dy=dy)
    k, s, p, d, out = _window_args(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d_backward")
    _check_output_like(dy, (*x.shape[:2], *out))
    indices = _check_indices(indices, dy.shape)
    check_request("max_pool2d_backward", nbytes(x.shape, x.dtype), "dx")
    dx, valid = get_backend().max_pool2d_backward(_contiguous(dy), indices, tuple(x.shape), k, s, p, d,
                                                  check_indices=bool(check_indices))
    _raise_unless_valid(valid, "max_pool2d")
    return dx


# ---- average pooling -----------------------------------------------------------------------------
def _avg_args(x_shape, kernel_size, stride, padding, ceil_mode, divisor_override, what):
    k, s, p, _, out = _window_args(x_shape, kernel_size, stride, padding, 1, ceil_mode, what)
    if divisor_override is not None:
        if int_arg(divisor_override, "divisor_override") < 1:
            raise ValueError(f"divisor_override must be None or a positive int, got {divisor_override!r}")
        check_int32((int(divisor_override),), "divisor_override")
        divisor_override = int(divisor_override)
    return k, s, p, out, divisor_override


def avg_pool2d(x: Any, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Any:
    """2-D average pooling (zero padding).

    Args:
        x: (N, C, H, W).
        kernel_size, stride (default kernel_size), padding (at most kernel_size // 2): int or pair.
        ceil_mode: as in :func:`max_pool2d`.
        count_include_pad: divide by the window size including padding (but not the ceil_mode
            overhang past the padding), else by the number of input elements in the window.
        divisor_override: a positive int that replaces the divisor.
    Returns:
        y (N, C, OH, OW).
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    k, s, p, out, div = _avg_args(tuple(x.shape), kernel_size, stride, padding, ceil_mode, divisor_override,
                                  "avg_pool2d")
    check_request("avg_pool2d", nbytes((*x.shape[:2], *out), x.dtype), "the output")
    return get_backend().avg_pool2d(_contiguous(x), k, s, p, out, bool(count_include_pad), div)


def avg_pool2d_backward(dy: Any, x_shape, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                        count_include_pad: bool = True, divisor_override: int | None = None) -> Any:
    """Gradient of :func:`avg_pool2d` w.r.t. its input of shape ``x_shape``: dy (N, C, OH, OW) -> dx."""
    check_array(dy, "dy", 4, "(N, C, OH, OW)")
    x_shape = _shape4(x_shape, "x_shape")
    k, s, p, out, div = _avg_args(x_shape, kernel_size, stride, padding, ceil_mode, divisor_override,
                                  "avg_pool2d_backward")
    _check_output_like(dy, (*x_shape[:2], *out))
    check_request("avg_pool2d_backward", nbytes(x_shape, dy.dtype), "dx")
    return get_backend().avg_pool2d_backward(_contiguous(dy), x_shape, k, s, p, bool(count_include_pad), div)


# ---- adaptive pooling ----------------------------------------------------------------------------
def _adaptive_size(output_size, h: int, w: int) -> tuple[int, int]:
    """``output_size`` as (OH, OW): an int, or a pair whose None entries keep the input size."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        resolved = tuple(size if v is None else v for v, size in zip(output_size, (h, w)))
    else:
        resolved = output_size
    try:
        return positive_pair(resolved, "output_size")
    except TypeError:
        raise TypeError(f"output_size must be an int or a pair of ints/None, got {output_size!r}") from None


def adaptive_avg_pool2d(x: Any, output_size) -> Any:
    """Adaptive average pooling to ``output_size`` (int, or pair with None = keep that size).

    Bin i of an axis of length H covers floor(i*H/OH) .. ceil((i+1)*H/OH) (PyTorch's bins).
    Args: x (N, C, H, W). Returns: (N, C, OH, OW).
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    check_spatial(tuple(x.shape), "x")
    out = _adaptive_size(output_size, *x.shape[2:])
    check_request("adaptive_avg_pool2d", nbytes((*x.shape[:2], *out), x.dtype), "the output")
    return get_backend().adaptive_avg_pool2d(_contiguous(x), out)


def adaptive_avg_pool2d_backward(dy: Any, x_shape, output_size) -> Any:
    """Gradient of :func:`adaptive_avg_pool2d` w.r.t. its input of shape ``x_shape``."""
    check_array(dy, "dy", 4, "(N, C, OH, OW)")
    x_shape = _shape4(x_shape, "x_shape")
    out = _adaptive_size(output_size, *x_shape[2:])
    _check_output_like(dy, (*x_shape[:2], *out))
    check_request("adaptive_avg_pool2d_backward", nbytes(x_shape, dy.dtype), "dx")
    return get_backend().adaptive_avg_pool2d_backward(_contiguous(dy), x_shape)


def adaptive_max_pool2d(x: Any, output_size, return_indices: bool = False, *, index_dtype=np.int64):
    """Adaptive max pooling with PyTorch's bins; indices (and index_dtype) as in :func:`max_pool2d`.

    Args: x (N, C, H, W); output_size int or pair (None = keep). Returns: y (N, C, OH, OW)
    [, indices].
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    check_spatial(tuple(x.shape), "x")
    out = _adaptive_size(output_size, *x.shape[2:])
    index_dtype = _index_dtype(index_dtype)
    y_shape = (*x.shape[:2], *out)
    # the backend computes the indices even when they are not returned
    check_request("adaptive_max_pool2d", nbytes(y_shape, x.dtype) + nbytes(y_shape, index_dtype),
                  "the output and the indices")
    y, indices = get_backend().adaptive_max_pool2d(_contiguous(x), out, index_dtype=index_dtype)
    return (y, indices) if return_indices else y


def adaptive_max_pool2d_backward(dy: Any, x: Any, indices: Any, output_size) -> Any:
    """Gradient of :func:`adaptive_max_pool2d` w.r.t. x, from the forward's indices."""
    check_array(x, "x", 4, "(N, C, H, W)")
    check_array(dy, "dy", 4, "(N, C, OH, OW)")
    same_dtype("x", x, dy=dy)
    check_spatial(tuple(x.shape), "x")
    out = _adaptive_size(output_size, *x.shape[2:])
    _check_output_like(dy, (*x.shape[:2], *out))
    indices = _check_indices(indices, dy.shape)
    check_request("adaptive_max_pool2d_backward", nbytes(x.shape, x.dtype), "dx")
    dx, valid = get_backend().adaptive_max_pool2d_backward(_contiguous(dy), indices, tuple(x.shape))
    _raise_unless_valid(valid, "adaptive_max_pool2d")
    return dx


# ---- LP pooling ----------------------------------------------------------------------------------
def _lp_args(x_shape, norm_type, kernel_size, stride, ceil_mode, what):
    """(p, kernel, stride, output size) of :func:`lp_pool2d`; p must be a finite number > 0."""
    p = check_real(norm_type, "norm_type")
    if not 0 < p < np.inf:
        raise ValueError(f"norm_type must be a finite number > 0, got {norm_type!r}")
    k, s, _, _, out = _window_args(x_shape, kernel_size, stride, 0, 1, ceil_mode, what)
    return p, k, s, out


def lp_pool2d(input: Any, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Any:
    """Power-average pooling, PyTorch's ``F.lp_pool2d``: y = (sum over the window of x^p)^(1/p).

    Computed as PyTorch does, ``(avg_pool2d(x^p, kernel_size, stride, 0, ceil_mode) * K)^(1/p)`` with
    K = kh*kw: a ceil_mode window overhanging the input is scaled by K / (its elements inside); x^p
    of a negative x is NaN unless p is an integer, and a negative window sum gives NaN.

    Args:
        input: (N, C, H, W), float32 or float64.
        norm_type: p, a finite number > 0.
        kernel_size, stride (default kernel_size): int or pair; windows have no padding.
        ceil_mode: round the output size up, as in :func:`max_pool2d`.
    Returns:
        y (N, C, OH, OW).
    """
    check_array(input, "input", 4, "(N, C, H, W)")
    p, k, s, out = _lp_args(input, norm_type, kernel_size, stride, ceil_mode, "lp_pool2d")
    check_request("lp_pool2d", nbytes((*input.shape[:2], *out), input.dtype), "the output")
    return get_backend().lp_pool2d(_contiguous(input), p, k, s, out)


def lp_pool2d_backward(dy: Any, input: Any, norm_type: float, kernel_size, stride=None,
                       ceil_mode: bool = False) -> Any:
    """Gradient of :func:`lp_pool2d` w.r.t. its input, PyTorch's chain rule through its formula:
    dx = p x^(p-1) * sum over the windows holding x of dy (1/p) u^(1/p - 1) K / count, u = the
    window's avg * K (a window whose average is 0 passes nothing on).

    Args:
        dy: (N, C, OH, OW); input: the forward input; the rest as in the forward.
    Returns:
        dx (N, C, H, W).
    """
    check_array(input, "input", 4, "(N, C, H, W)")
    check_array(dy, "dy", 4, "(N, C, OH, OW)")
    same_dtype("input", input, dy=dy)
    p, k, s, out = _lp_args(input, norm_type, kernel_size, stride, ceil_mode, "lp_pool2d_backward")
    _check_output_like(dy, (*input.shape[:2], *out))
    check_request("lp_pool2d_backward", nbytes(input.shape, input.dtype), "dx")
    return get_backend().lp_pool2d_backward(_contiguous(dy), _contiguous(input), p, k, s)


# ---- GeM -----------------------------------------------------------------------------------------
def _gem_p(p, dtype):
    """p as a one-element backend array of ``dtype``; ValueError unless p > 0."""
    be = get_backend()
    if isinstance(p, numbers.Real) and not isinstance(p, bool):
        value = float(p)
        array = be.asarray(np.array([value], dtype=dtype))
    else:
        be.check_native("p", p)
        if p.size != 1 or p.dtype.kind != "f":
            raise TypeError(f"p must be a Python float or a float array of shape (1,), got {p.dtype} "
                            f"array of shape {tuple(p.shape)}")
        array = be.xp.ascontiguousarray(p.reshape(1), dtype=dtype)
        # NOTE: one host sync for a learnable p; the check must happen before any kernel runs.
        value = float(be.to_numpy(array)[0])
    if not value > 0 or not np.isfinite(value):
        raise ValueError(f"p must be a finite number > 0, got {value!r}")
    return array


def _gem_args(x_shape, p, eps, kernel_size, stride, dtype):
    check_spatial(x_shape, "x")
    if not isinstance(eps, numbers.Real) or not 0 < eps < np.inf:
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    h, w = x_shape[2:]
    if kernel_size is None:
        if stride is not None:
            raise ValueError(f"stride applies to windowed GeM only (kernel_size given), got stride={stride!r}")
        k, s = (h, w), (1, 1)
    else:
        k = positive_pair(kernel_size, "kernel_size")
        s = k if stride is None else positive_pair(stride, "stride")
    out = ((h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1)
    if h < k[0] or w < k[1]:
        raise ValueError(f"gem: kernel_size {k} is larger than the input {h}x{w} (output size < 1)")
    check_window_extent((h, w), k, s, (0, 0), (1, 1), out, "gem")
    return _gem_p(p, dtype), float(eps), k, s, out


def gem(x: Any, p=3.0, eps: float = 1e-6, kernel_size=None, stride=None) -> Any:
    """Generalized-mean pooling: y = mean_window(clamp(x, min=eps)^p)^(1/p).

    Every backend computes each window with its maximum M of c = clamp(x, min=eps) factored out,
    y = M * mean((c / M)^p)^(1/p), forward and backward: so any p works in float32 whose result is
    finite in exact arithmetic, where mean(c^p) alone overflows (p = 50 on inputs in [0, 10]) or
    underflows to 0 (p = 50 on zeros: eps^50), and PyTorch's formula then gives inf or a 0/0 NaN.
    The result is PyTorch's float64 formula wherever that one is finite; where it is not, it is
    the limit of that formula, e.g. zeros give y = eps, dp = 0 and dx = 0 (the clamp's gradient
    is zero below eps) on every backend.

    Args:
        x: (N, C, H, W).
        p: > 0; a Python float or a backend array of shape (1,) (learnable).
        eps: clamp floor, > 0.
        kernel_size: None for global pooling (output (N, C, 1, 1)), else int or pair; windows
            have no padding and stride defaults to kernel_size.
    Returns:
        y (N, C, OH, OW).
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    p_arr, eps, k, s, out = _gem_args(tuple(x.shape), p, eps, kernel_size, stride, x.dtype)
    check_request("gem", nbytes((*x.shape[:2], *out), x.dtype), "the output")
    return get_backend().gem(_contiguous(x), p_arr, eps, k, s, out)


def gem_backward(dy: Any, x: Any, p, eps: float = 1e-6, kernel_size=None, stride=None, needs=(True, True)):
    """Gradients of :func:`gem`.

    Args:
        dy: (N, C, OH, OW); x: the forward input; p, eps, kernel_size, stride: as in the forward.
        needs: (dx, dp) flags; an entry not needed is returned as None.
    Returns:
        (dx (N, C, H, W), dp of shape (1,), summed over the batch), both of x's dtype.
    """
    check_array(x, "x", 4, "(N, C, H, W)")
    check_array(dy, "dy", 4, "(N, C, OH, OW)")
    same_dtype("x", x, dy=dy)
    need_dx, need_dp = _needs(needs, 2)
    p_arr, eps, k, s, out = _gem_args(tuple(x.shape), p, eps, kernel_size, stride, x.dtype)
    _check_output_like(dy, (*x.shape[:2], *out))
    if not (need_dx or need_dp):
        return None, None
    check_request("gem_backward", nbytes(x.shape, x.dtype) if need_dx else 0, "dx")
    return get_backend().gem_backward(_contiguous(dy), _contiguous(x), p_arr, eps, k, s, need_dx, need_dp)


def _needs(needs, count: int) -> tuple[bool, ...]:
    if not isinstance(needs, (tuple, list)) or len(needs) != count:
        raise TypeError(f"needs must be a tuple of {count} bools, got {needs!r}")
    return tuple(bool(v) for v in needs)


__all__ = ["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
           "adaptive_max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "gem", "gem_backward",
           "lp_pool2d", "lp_pool2d_backward", "max_pool2d", "max_pool2d_backward"]
recorded("adaptive_max_pool2d", "gem", "max_pool2d")
autograd_form(avg_pool2d, avg_pool2d_backward, saves=("x_shape",), label="AvgPool2DBackward")
autograd_form(adaptive_avg_pool2d, adaptive_avg_pool2d_backward, saves=("x_shape",), label="AdaptiveAvgPool2DBackward")
autograd_form(lp_pool2d, lp_pool2d_backward, saves=("input",), label="LpPool2DBackward")


def max_pool2d_transient_bytes(x_shape: tuple[int, ...], dtype: Any, direction: str, backend: Any, kernel_size,
                               stride=None, padding=0, dilation=1, ceil_mode: bool = False, *,
                               with_indices: bool = True, index_dtype: Any = np.int64) -> int:
    """Bytes :func:`max_pool2d` (``direction="forward"``, with ``index_dtype`` indices or, without
    ``with_indices``, none) or :func:`max_pool2d_backward` (``"backward"``) allocates above its
    results at its peak.

    numpy forward: with indices, per output the int16 number of its best tap, one boolean mask at a
    time (a tap's comparison, then the windows left unset, then the NaN check: about 4 bytes); 2x2
    windows with stride 2 go in two pairwise steps instead: the column step's maxima and choices
    (2 elements and 2 booleans per output) and the boolean masks of the output's size; the indices
    are computed as int64, so int32 ones add that int64 array (8 bytes per output; 4 more on the
    pairwise path, whose peak is before the conversion). Without
    indices, nothing. numpy backward: about 10 bytes per output (the window check's mask, the
    gather's int64 flat indices and its mask of the indices inside the plane; 9 without the check);
    windows that overlap scatter through ``np.bincount`` in float64, a float64 copy of dx (disjoint
    windows write dx directly).
    cupy/emulated: nothing (the kernels write the results, indices in either width, directly).
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    n, c, h, w = _shape4(x_shape, "x_shape")
    k, s, p, d, (oh, ow) = _window_args((n, c, h, w), kernel_size, stride, padding, dilation, ceil_mode,
                                        "max_pool2d")
    if capabilities(backend).kernels:
        return 0
    return max_pool2d_numpy_transient_bytes((n, c, h, w), (oh, ow), dtype, direction, k, s, p, d,
                                            with_indices=with_indices, index_dtype=index_dtype)


def max_pool2d_numpy_transient_bytes(x_shape: tuple[int, int, int, int], out_size: tuple[int, int], dtype: Any,
                                     direction: str, k, s, p, d, *, with_indices: bool = True,
                                     index_dtype: Any = np.int64, check_indices: bool = True) -> int:
    """:func:`max_pool2d_transient_bytes` on the numpy backend, for validated window arguments (pairs)
    and the output size (the shape-only estimator calls it with what the primitive receives); a
    backward without ``check_indices`` (autograd's) skips the check's boolean per output."""
    n, c, h, w = x_shape
    outputs = n * c * out_size[0] * out_size[1]
    if direction == "backward":
        disjoint = all(si >= (ki - 1) * di + 1 for ki, si, di in zip(k, s, d))
        return outputs * (10 if check_indices else 9) + (0 if disjoint else n * c * h * w * 8)
    if not with_indices:
        return 0
    int32 = np.dtype(index_dtype) != np.dtype(np.int64)
    if is_pairwise((n, c, h, w), k, s, p, d, tuple(out_size)):
        # The bools added to the int64 indices go through NumPy's iterator buffer.
        return outputs * (4 + 2 * np.dtype(dtype).itemsize + (4 if int32 else 0)) + numpy_buffer_bytes(outputs, 8)
    return outputs * (4 + (8 if int32 else 0))


def adaptive_avg_pool2d_transient_bytes(x_shape: tuple[int, ...], dtype: Any, direction: str, backend: Any) -> int:
    """Bytes :func:`adaptive_avg_pool2d` (``direction="forward"``) or its backward allocates above
    its result: the numpy backward spreads each window's share through one iterator buffer of up to
    ``np.getbufsize()`` elements of x; nothing else is larger than a (N, C) vector."""
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    n, c, h, w = _shape4(x_shape, "x_shape")
    if capabilities(backend).kernels or direction == "forward":
        return 0
    return numpy_buffer_bytes(n * c * h * w, np.dtype(dtype).itemsize)
