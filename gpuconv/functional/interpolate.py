"""Resizing (N, C, H, W) images: ``interpolate`` (nearest, bilinear) and its backward, PyTorch's
``F.interpolate`` semantics (source coordinates, ``align_corners``, ``scale_factor`` vs ``size``).

Both modes are separable: along each axis the output is a fixed linear map of the input, a matrix
A (out, in) with one (nearest) or two (bilinear) non-zeros per row. Forward computes
A_h @ x @ A_w^T and backward A_h^T @ dy @ A_w with the backend's matmul, as array expressions on
every backend (deterministic: no scatter, no atomics). The matrices are built on the host in
float64 and cast to the input's dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..backend import get_backend
from ._args import check_array, positive_pair, shape_arg
from ._memory import check_request, nbytes
from ._dispatch import autograd_form

MODES = ("nearest", "bilinear")


def _check_mode(mode: Any, align_corners: Any) -> bool:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "nearest":
        if align_corners is not None:
            raise ValueError("align_corners can only be set with mode='bilinear' (as in PyTorch), got "
                             f"align_corners={align_corners!r} with mode='nearest'")
        return False
    if align_corners is not None and not isinstance(align_corners, bool):
        raise TypeError(f"align_corners must be a bool or None, got {align_corners!r}")
    return bool(align_corners)


def _scales(scale_factor: Any) -> tuple[float, float]:
    values = (scale_factor, scale_factor) if isinstance(scale_factor, numbers.Real) else scale_factor
    if (not isinstance(values, (tuple, list)) or len(values) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 < v < math.inf for v in values)):
        raise ValueError(f"scale_factor must be a positive finite number or a pair of them, got {scale_factor!r}")
    return float(values[0]), float(values[1])


def _size_or_scales(size: Any, scale_factor: Any) -> tuple[tuple[int, int] | None, tuple[float, float] | None]:
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor")
    if size is None:
        return None, _scales(scale_factor)
    return positive_pair(size, "size"), None


def check_interpolate_args(size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                           align_corners: bool | None = None) -> None:
    """Raises the ValueError / TypeError :func:`interpolate` would raise for these arguments, without an input."""
    _check_mode(mode, align_corners)
    _size_or_scales(size, scale_factor)


def interpolate_geometry(input_shape: tuple[int, ...], size: Any = None, scale_factor: Any = None,
                         recompute_scale_factor: bool | None = None
                         ) -> tuple[tuple[int, int], tuple[float | None, float | None]]:
    """((OH, OW), (scale_h, scale_w)) for an (N, C, H, W) input: the output size from ``size`` or
    floor(H * scale_factor), and the scale factors the coordinate mapping uses (None: in / out)."""
    if len(input_shape) != 4:
        raise ValueError(f"input must be 4-D (N, C, H, W), got shape {tuple(input_shape)}")
    size, scales = _size_or_scales(size, scale_factor)
    if size is not None:
        return size, (None, None)
    h, w = input_shape[2:]
    out = (int(math.floor(h * scales[0])), int(math.floor(w * scales[1])))
    if min(out) < 1:
        raise ValueError(f"scale_factor {scale_factor!r} makes the {h}x{w} input empty ({out[0]}x{out[1]})")
    return out, ((None, None) if recompute_scale_factor else scales)


def _axis_matrix(in_size: int, out_size: int, scale: float | None, mode: str, align_corners: bool,
                 dtype: Any) -> np.ndarray:
    """A (out_size, in_size): row o holds the weights of the inputs output o reads."""
    a = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    # NOTE: PyTorch copies an axis whose size does not change, whatever the scale factor, and
    # (nearest) maps output o to o // 2 when the size doubles; so do we.
    if out_size == in_size:
        a[rows, rows] = 1.0
        return a.astype(dtype)
    if mode == "nearest" and out_size == 2 * in_size:
        a[rows, rows // 2] = 1.0
        return a.astype(dtype)
    if mode == "nearest":
        # PyTorch computes the source index in float32: floor(o * scale), scale = 1/scale_factor or in/out.
        s = np.float32(1.0 / scale) if scale is not None else np.float32(in_size) / np.float32(out_size)
        src = np.minimum(np.floor(rows.astype(np.float32) * s).astype(np.int64), in_size - 1)
        a[rows, src] = 1.0
        return a.astype(dtype)
    if align_corners:
        s = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = rows * s
    else:
        s = 1.0 / scale if scale is not None else in_size / out_size
        src = np.maximum((rows + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    np.add.at(a, (rows, i0), 1.0 - lam)
    np.add.at(a, (rows, i1), lam)
    return a.astype(dtype)


def _matrices(shape, out_size, scales, mode, align_corners, dtype):
    be = get_backend()
    a_h = _axis_matrix(shape[2], out_size[0], scales[0], mode, align_corners, dtype)
    a_w = _axis_matrix(shape[3], out_size[1], scales[1], mode, align_corners, dtype)
    return be.asarray(a_h), be.asarray(a_w)


def interpolate(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None) -> Any:
    """Resizes the last two dimensions, PyTorch's ``F.interpolate`` for 4-D inputs.

    Args:
        input: (N, C, H, W), float32 or float64.
        size: (OH, OW) or an int; or
        scale_factor: a number or a pair; the output is floor(H * scale_factor) x floor(W * scale_factor).
        mode: "nearest" (PyTorch's nearest: source floor(o * H / OH)) or "bilinear".
        align_corners: bilinear only: True maps the corner pixels' centres onto each other,
            False (the default) maps the corners of the pixel grid (half-pixel offsets).
        recompute_scale_factor: True computes the mapping from the output size, not from
            ``scale_factor`` (they differ when H * scale_factor is not an integer).
    Returns:
        (N, C, OH, OW), input's dtype.
    """
    check_array(input, "input")
    corners = _check_mode(mode, align_corners)
    out_size, scales = interpolate_geometry(tuple(input.shape), size, scale_factor, recompute_scale_factor)
    check_request("interpolate", nbytes(input.shape[:2] + out_size, input.dtype)
                  + interpolate_workspace_bytes(input.shape, input.dtype, out_size),
                  "the output, the half-resized input and the two matrices")
    xp = get_backend().xp
    a_h, a_w = _matrices(input.shape, out_size, scales, mode, corners, input.dtype)
    if mode == "nearest":
        rows, cols = xp.argmax(a_h, axis=1), xp.argmax(a_w, axis=1)
        return xp.ascontiguousarray(input[:, :, rows][:, :, :, cols])
    return xp.matmul(xp.matmul(a_h, input), a_w.T)


def interpolate_backward(dy: Any, input_shape: tuple[int, ...], size: Any = None, scale_factor: Any = None,
                         mode: str = "nearest", align_corners: bool | None = None,
                         recompute_scale_factor: bool | None = None) -> Any:
    """Gradient of :func:`interpolate` with respect to its input: each input pixel gets the sum of
    the output gradients that read it, times the weights they read it with.

    Args:
        dy: (N, C, OH, OW); input_shape: (N, C, H, W) of the forward's input; the rest as given
            to :func:`interpolate`.
    Returns:
        dx (N, C, H, W), dy's dtype.
    """
    check_array(dy, "dy")
    corners = _check_mode(mode, align_corners)
    input_shape = shape_arg(input_shape, "input_shape", 4, positive=False)
    out_size, scales = interpolate_geometry(input_shape, size, scale_factor, recompute_scale_factor)
    expected = input_shape[:2] + out_size
    if tuple(dy.shape) != expected:
        raise ValueError(f"dy must have the interpolate output shape {expected}, got {tuple(dy.shape)}")
    check_request("interpolate_backward", nbytes(input_shape, dy.dtype)
                  + interpolate_workspace_bytes(input_shape, dy.dtype, out_size),
                  "dx, the half-resized gradient and the two matrices")
    xp = get_backend().xp
    a_h, a_w = _matrices(input_shape, out_size, scales, mode, corners, dy.dtype)
    return xp.matmul(a_h.T, xp.matmul(dy, a_w))


def interpolate_workspace_bytes(input_shape: tuple[int, ...], dtype: Any, size: Any = None, scale_factor: Any = None,
                                recompute_scale_factor: bool | None = None) -> int:
    """Temporary bytes forward or backward allocate: the half-resized (N, C, OH, W) array and the
    two matrices."""
    (oh, ow), _ = interpolate_geometry(tuple(input_shape), size, scale_factor, recompute_scale_factor)
    n, c, h, w = input_shape
    itemsize = np.dtype(dtype).itemsize
    return (n * c * oh * w + oh * h + ow * w) * itemsize


__all__ = ["check_interpolate_args", "interpolate", "interpolate_backward", "interpolate_geometry",
           "interpolate_workspace_bytes"]
autograd_form(interpolate, interpolate_backward, saves=("input_shape",), label="UpsampleBackward")
