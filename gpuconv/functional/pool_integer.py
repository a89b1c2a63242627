"""max_pool2d on integer images (uint8, int16, ...), as PyTorch's CPU pooling takes them.

The pooling kernels are written for float32/float64; an integer maximum needs no arithmetic, so it
runs here as a loop over the kernel's taps with strided views of the backend's array module (exact
for every integer type, including int64 beyond 2^53, which a float64 detour would round). No
backward: integer images carry no gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_integer_image(x: Any) -> bool:
    """Integer (signed or unsigned) and not bool: the dtypes :func:`max_pool2d_integer` takes."""
    return np.dtype(x.dtype).kind in "iu"


def max_pool2d_integer(xp, x: Any, k, s, p, d, out, return_indices: bool, index_dtype) -> tuple[Any, Any]:
    """(y (N, C, OH, OW) of x's dtype, indices or None) for checked window arguments (``out`` is
    the output size from pool.py's _window_args), with PyTorch's rules: padding is the type's
    minimum, the first maximum in window order wins, and each index starts at the window's first
    tap moved into the plane by whole dilation steps (a window of padding only keeps it)."""
    n, c, h, w = x.shape
    oh, ow = out
    rows0, cols0 = np.arange(oh) * s[0] - p[0], np.arange(ow) * s[1] - p[1]
    first_row = rows0 + d[0] * -(-np.maximum(-rows0, 0) // d[0])
    first_col = cols0 + d[1] * -(-np.maximum(-cols0, 0) // d[1])
    y = xp.full((n, c, oh, ow), np.iinfo(x.dtype).min, dtype=x.dtype)
    indices = None
    if return_indices:
        start = (first_row[:, None] * w + first_col[None, :]).astype(index_dtype)
        indices = xp.broadcast_to(xp.asarray(start), (n, c, oh, ow)).copy()
    for i in range(k[0]):
        rows = rows0 + i * d[0]
        row_ok = (rows >= 0) & (rows < h)
        for j in range(k[1]):
            cols = cols0 + j * d[1]
            col_ok = (cols >= 0) & (cols < w)
            if not row_ok.any() or not col_ok.any():
                continue
            # This tap of every window, gathered at clipped positions; those outside are masked out.
            r, q = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
            tap = x[:, :, xp.asarray(r)[:, None], xp.asarray(q)[None, :]]
            take = xp.asarray(row_ok[:, None] & col_ok[None, :]) & (tap > y)  # strictly: the first maximum stays
            y = xp.where(take, tap, y)
            if return_indices:
                indices = xp.where(take, xp.asarray((r[:, None] * w + q[None, :]).astype(index_dtype)), indices)
    return y, indices
