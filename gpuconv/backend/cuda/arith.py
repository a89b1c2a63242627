"""Launchers for the arithmetic of a training step that is not a layer's own kernel (shared by the
cupy and emulated backends): sums of two arrays (residual adds and their gradients), in-place
gradient accumulation, filling, Linear's bias add, the bias gradients of Conv2d and Linear, and
copies of strided views such as transposes (kernels/elementwise.cu and kernels/reduce.cu).

Each primitive takes what the functional layer checked: arrays of this backend, one float dtype.
Arrays the kernels cannot take (not C-contiguous, another dtype) go through the array module's own
expression instead (CuPy's JIT kernels on the GPU), with the same result.
"""

from __future__ import annotations

import math

import numpy as np

from .batchnorm import _address

MAX_GRID = 65535
BLOCK = 256
REDUCE_BLOCK = 256  # kBlock in reduce.cu
INT32_LIMIT = 2**31
TILE, TILE_ROWS_PER_PASS = 32, 8  # copy_transpose's tile and blockDim.y (kernels/elementwise.cu)
TRANSPOSE_DIM_LIMIT = 2**30  # the tiled kernel's int tile loops stay far from overflow below this


def _kernel_ready(*arrays) -> bool:
    first = arrays[0]
    return all(a.dtype == first.dtype and a.flags.c_contiguous for a in arrays) \
        and first.dtype in (np.float32, np.float64)


def _batched_transpose(shape, strides):
    """(batches, batch1, rows, cols, sb0, sb1, scol) when a view of ``shape`` with element
    ``strides`` is a batch of 2-D transposes, else None: after dropping size-1 axes and merging
    neighbours the view holds contiguously (stride[i] == stride[i+1] * size[i+1]), the last axis has
    a stride other than 1, the one before it stride 1, and at most two batch axes are left."""
    axes = []
    for size, stride in zip(shape, strides):
        if size == 1:
            continue
        if axes and axes[-1][1] == stride * size:
            axes[-1] = (axes[-1][0] * size, stride)
        else:
            axes.append((size, stride))
    if len(axes) < 2 or axes[-2][1] != 1 or axes[-1][1] == 1:
        return None
    (rows, _), (cols, scol) = axes[-2:]
    batch = [(1, 0)] * (4 - len(axes)) + axes[:-2]
    (b0, sb0), (b1, sb1) = batch
    if max(rows, cols, b1) >= TRANSPOSE_DIM_LIMIT:
        return None
    return b0 * b1, b1, rows, cols, sb0, sb1, scol


def _aligned(*arrays) -> int:
    return int(all(_address(a) % 16 == 0 for a in arrays))


class ArithKernels:
    def _kernel_ready(self, *arrays) -> bool:
        return all(self.is_native(a) for a in arrays) and _kernel_ready(*arrays)

    def add(self, a, b):
        """a + b for arrays of one shape: one launch; allocates only the result."""
        if not (self._kernel_ready(a, b) and a.shape == b.shape):
            return a + b
        out = self.empty(a.shape, a.dtype)
        self.launch_1d(self.kernel("elementwise.cu", "add", a.dtype), a.size,
                       (a, b, out, np.int64(a.size), np.int32(_aligned(a, b, out))))
        return out

    def add_(self, a, b):
        """a += b in place (a and b of one shape); returns a. One launch, nothing allocated."""
        if not (self._kernel_ready(a, b) and a.shape == b.shape):
            a += b
            return a
        self.launch_1d(self.kernel("elementwise.cu", "accumulate", a.dtype), a.size,
                       (a, b, np.int64(a.size), np.int32(_aligned(a, b))))
        return a

    def fill_(self, a, value):
        """Every element of ``a`` set to ``value`` in place; returns a."""
        if not self._kernel_ready(a):
            a[...] = value
            return a
        self.launch_1d(self.kernel("elementwise.cu", "fill", a.dtype), a.size,
                       (a, np.int64(a.size), a.dtype.type(value), np.int32(_aligned(a))))
        return a

    def bias_add_(self, y, bias):
        """y (rows, cols) += bias (cols,) in place, C-contiguous; returns y."""
        rows, cols = y.shape
        if not self._kernel_ready(y, bias) or rows >= INT32_LIMIT or cols >= INT32_LIMIT:
            y += bias
            return y
        if y.size == 0:
            return y
        wide = y.size >= INT32_LIMIT
        kernel = self.kernel("elementwise.cu", "bias_add_rows_i64" if wide else "bias_add_rows_i32", y.dtype)
        grid = (min(-(-cols // BLOCK), MAX_GRID), min(rows, MAX_GRID))
        kernel(grid, (BLOCK,), (y, bias, np.int32(rows), np.int32(cols)))
        return y

    def sum_except_channel(self, x, axis: int = 1):
        """(C,) sums of ``x`` over every axis but ``axis`` (C = x.shape[axis]): the bias gradient.
        Fixed-order, no atomics. One launch; allocates only the result."""
        channels = int(x.shape[axis])
        if not self._kernel_ready(x):
            return x.sum(axis=tuple(i for i in range(x.ndim) if i != axis))
        out = self.empty((channels,), x.dtype)
        if channels == 0:
            return out
        def make() -> tuple:
            outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
            name = "channel_sum_i64" if x.size >= INT32_LIMIT else "channel_sum_i32"
            return (self.kernel("reduce.cu", name, x.dtype), (min(channels, MAX_GRID),), (REDUCE_BLOCK,),
                    (np.int64(outer), np.int32(channels), np.int64(inner)))

        key = ("channel_sum", self.module_cache_key(), x.dtype, x.shape, axis)
        kernel, grid, block, scalars = self.cached_plan("_arith_plans", key, make)
        kernel(grid, block, (x, out) + scalars)
        return out

    def copy_into(self, dst, src):
        """dst[...] = src for a C-contiguous dst and a view src of the same shape and dtype with up
        to 4 dimensions and non-negative strides (a transpose, a slice); returns dst. One launch:
        a tiled transpose through shared memory when the view is a batch of 2-D transposes (after
        dropping its size-1 axes and merging axes it holds contiguously), else a thread per
        destination element."""
        if not (self.is_native(src) and self._kernel_ready(dst) and src.dtype == dst.dtype
                and src.shape == dst.shape and src.ndim <= 4 and min(src.strides, default=0) >= 0
                and all(s % src.itemsize == 0 for s in src.strides)):
            dst[...] = src
            return dst
        if dst.size == 0:
            return dst
        key = ("copy", self.module_cache_key(), dst.dtype, src.shape, src.strides)
        kernel, grid, block, scalars, span_size = self.cached_plan("_arith_plans", key, lambda: self._copy_plan(src))
        # The kernels take the memory the view spans as a contiguous 1-D array (what a launch checks
        # and the emulator's sanitizer bounds) and index it with the strides.
        span = self.xp.lib.stride_tricks.as_strided(src, shape=(span_size,), strides=(src.itemsize,))
        kernel(grid, block, (span, dst) + scalars)
        return dst

    def _copy_plan(self, src) -> tuple:
        """(kernel, grid, block, scalars, elements spanned) of copy_into for views shaped like ``src``."""
        shape = (1,) * (4 - src.ndim) + tuple(int(v) for v in src.shape)
        strides = (0,) * (4 - src.ndim) + tuple(s // src.itemsize for s in src.strides)
        reach = sum((size - 1) * stride for size, stride in zip(shape, strides) if size)
        wide = src.size >= INT32_LIMIT or reach >= INT32_LIMIT
        transpose = _batched_transpose(shape, strides)
        if transpose is not None:
            batches, batch1, rows, cols, sb0, sb1, scol = transpose
            kernel = self.kernel("elementwise.cu", "copy_transpose_i64" if wide else "copy_transpose_i32", src.dtype)
            grid = (min(-(-cols // TILE), MAX_GRID), min(-(-rows // TILE), MAX_GRID), min(batches, MAX_GRID))
            scalars = (np.int64(batches), np.int32(batch1), np.int32(rows), np.int32(cols), np.int64(sb0),
                       np.int64(sb1), np.int64(scol))
            return kernel, grid, (TILE, TILE_ROWS_PER_PASS), scalars, reach + 1
        kernel = self.kernel("elementwise.cu", "copy_strided_i64" if wide else "copy_strided_i32", src.dtype)
        scalars = (np.int64(src.size), *(np.int32(v) for v in shape[1:]), *(np.int64(v) for v in strides))
        return kernel, (min(-(-src.size // BLOCK), MAX_GRID),), (BLOCK,), scalars, reach + 1  # as launch_1d

    def contiguous(self, a):
        """``a`` itself when C-contiguous, else a C-contiguous copy (:meth:`copy_into`)."""
        if a.flags.c_contiguous:
            return a
        return self.copy_into(self.empty(a.shape, a.dtype), a)

    def count_step(self, counter) -> None:
        """counter += 1 in place on a 0-D int64 array (a step counter kept on the device)."""
        self.module("elementwise.cu").get_function("count_step_i64")((1,), (1,), (counter,))
