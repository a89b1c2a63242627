"""Launchers for kernels/im2col.cu (shared by the cupy and emulated backends)."""

from __future__ import annotations

import numpy as np


def column_strides(layout: str, n: int, rows: int, l_size: int) -> tuple[int, int]:
    """(row_stride, n_stride) of the columns in ``layout`` (see kernels/im2col.cu)."""
    if layout == "nkl":
        return l_size, rows * l_size
    return n * l_size, l_size


class Im2colKernels:
    def _im2col_args(self, x_shape, kernel_size, stride, padding, dilation, out_size, layout):
        n, c, h, w = x_shape
        (kh, kw), (oh, ow) = kernel_size, out_size
        row_stride, n_stride = column_strides(layout, n, c * kh * kw, oh * ow)
        ints = (n, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow)
        return tuple(np.int32(v) for v in ints) + (np.int64(row_stride), np.int64(n_stride))

    def im2col(self, x, kernel_size, stride, padding, dilation, out_size, layout):
        n, c = x.shape[:2]
        (kh, kw), (oh, ow) = kernel_size, out_size
        shape = (n, c * kh * kw, oh * ow) if layout == "nkl" else (c * kh * kw, n * oh * ow)
        cols = self.empty(shape, x.dtype)
        x = self.xp.ascontiguousarray(x)
        kernel = self.kernel("im2col.cu", "im2col_forward", x.dtype)
        self.launch_1d(kernel, cols.size,
                       (x, cols) + self._im2col_args(x.shape, kernel_size, stride, padding, dilation, out_size, layout))
        return cols

    def col2im(self, cols, x_shape, kernel_size, stride, padding, dilation, out_size, layout):
        dx = self.empty(x_shape, cols.dtype)
        cols = self.xp.ascontiguousarray(cols)
        kernel = self.kernel("im2col.cu", "im2col_backward", cols.dtype)
        self.launch_1d(kernel, dx.size,
                       (cols, dx) + self._im2col_args(x_shape, kernel_size, stride, padding, dilation, out_size, layout))
        return dx
