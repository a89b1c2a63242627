"""Launchers for kernels/im2col.cu (shared by the cupy and emulated backends).

Version 2 runs by default, in its 32-bit index variant when every offset fits an int (checked
here) and its 64-bit variant otherwise; ``version=1`` runs the reference kernels and
``index_bits=64`` forces the wide variant (tests run both on small tensors).
"""

from __future__ import annotations

import numpy as np

INT32_LIMIT = 2**31
MAX_GRID_Y = 65535
THREADS = 256


def column_strides(layout: str, n: int, rows: int, l_size: int) -> tuple[int, int]:
    """(row_stride, n_stride) of the columns in ``layout`` (see kernels/im2col.cu)."""
    if layout == "nkl":
        return l_size, rows * l_size
    return n * l_size, l_size


def index_bits(*extents: int) -> int:
    """32 when every extent (largest offset + 1 of an array a kernel addresses) fits an int, else 64."""
    return 32 if max(extents) < INT32_LIMIT else 64


def plane_block(plane_size: int) -> tuple[int, int]:
    """(BX, BY): BX threads over a plane's pixels (the plane rounded up to a warp, at most 256),
    BY planes per block, THREADS threads in all."""
    bx = min(THREADS, -(-plane_size // 32) * 32)
    return bx, THREADS // bx


class Im2colKernels:
    def _im2col_args(self, x_shape, kernel_size, stride, padding, dilation, out_size, layout):
        n, c, h, w = x_shape
        (kh, kw), (oh, ow) = kernel_size, out_size
        row_stride, n_stride = column_strides(layout, n, c * kh * kw, oh * ow)
        ints = (n, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow)
        return tuple(np.int32(v) for v in ints) + (np.int64(row_stride), np.int64(n_stride))

    def _v2_launch(self, op, dtype, x_shape, kernel_size, stride, padding, dilation, out_size, layout, plane_size,
                   arrays, extra=(), bits=None):
        n, c, h, w = x_shape
        (kh, kw), (oh, ow) = kernel_size, out_size
        row_stride, n_stride = column_strides(layout, n, c * kh * kw, oh * ow)
        cols_extent = (c * kh * kw - 1) * row_stride + (n - 1) * n_stride + oh * ow
        bits = bits or index_bits(n * c * h * w, cols_extent)
        wide = np.int64 if bits == 64 else np.int32
        ints = (n * c, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow)
        args = arrays + tuple(np.int32(v) for v in ints) + (wide(row_stride), wide(n_stride)) + extra
        bx, by = plane_block(plane_size)
        grid = (-(-plane_size // bx), min(-(-(n * c) // by), MAX_GRID_Y))
        self.kernel("im2col.cu", f"{op}_v2_i{bits}", dtype)(grid, (bx, by), args)

    def im2col(self, x, kernel_size, stride, padding, dilation, out_size, layout, *, out=None, version: int = 2,
               index_bits: int | None = None):
        """Columns of ``x`` in ``layout``; ``out`` (C-contiguous, the layout's shape) receives them."""
        n, c = x.shape[:2]
        (kh, kw), (oh, ow) = kernel_size, out_size
        shape = (n, c * kh * kw, oh * ow) if layout == "nkl" else (c * kh * kw, n * oh * ow)
        cols = self.empty(shape, x.dtype) if out is None else out
        if cols.size == 0:
            return cols
        x = self.xp.ascontiguousarray(x)
        if version == 1:
            self.launch_1d(self.kernel("im2col.cu", "im2col_forward", x.dtype), cols.size,
                           (x, cols) + self._im2col_args(x.shape, kernel_size, stride, padding, dilation, out_size,
                                                         layout))
        else:
            self._v2_launch("im2col_forward", x.dtype, x.shape, kernel_size, stride, padding, dilation, out_size,
                            layout, oh * ow, (x, cols), bits=index_bits)
        return cols

    def col2im(self, cols, x_shape, kernel_size, stride, padding, dilation, out_size, layout, *, out=None,
               version: int = 2, index_bits: int | None = None):
        """The image (``x_shape``) that sums ``cols``; ``out`` (C-contiguous) receives it."""
        dx = self.empty(x_shape, cols.dtype) if out is None else out
        if dx.size == 0:
            return dx
        cols = self.xp.ascontiguousarray(cols)
        if version == 1:
            self.launch_1d(self.kernel("im2col.cu", "im2col_backward", cols.dtype), dx.size,
                           (cols, dx) + self._im2col_args(x_shape, kernel_size, stride, padding, dilation, out_size,
                                                          layout))
        else:
            (sh, sw), (dh, dw) = stride, dilation
            steps = tuple(np.int32(v) for v in (dh // sh, dh % sh, dw // sw, dw % sw))
            self._v2_launch("im2col_backward", cols.dtype, x_shape, kernel_size, stride, padding, dilation, out_size,
                            layout, x_shape[2] * x_shape[3], (cols, dx), steps, bits=index_bits)
        return dx
