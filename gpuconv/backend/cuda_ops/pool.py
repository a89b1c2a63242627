"""Launchers for kernels/pool.cu (shared by the cupy and emulated backends)."""

from __future__ import annotations

import numpy as np

# Blocks of the GeM dp reduction: a fixed count, so the summation order (and the result) does not
# depend on the device; each block's threads stride over the outputs.
GEM_REDUCE_BLOCKS = 128
REDUCE_BLOCK = 256  # threads per reduction block; must equal kReduceBlock in pool.cu
# #defines for pool.cu; tests set {"GC_INDEX32_LIMIT": 0} to run the 64-bit index path.
DEFINES: dict | None = None


def _i32(*values) -> tuple:
    return tuple(np.int32(v) for v in values)


class PoolKernels:
    def _kernel(self, op: str, dtype):
        return self.kernel("pool.cu", op, dtype, DEFINES)

    def _planes(self, shape) -> np.int64:
        return np.int64(shape[0] * shape[1])

    def max_pool2d(self, x, kernel_size, stride, padding, dilation, out_size, with_indices=True):
        n, c, h, w = x.shape
        oh, ow = out_size
        y = self.empty((n, c, oh, ow), x.dtype)
        indices = self.empty((n, c, oh, ow) if with_indices else (1,), np.int64)
        self.launch_1d(self._kernel("max_pool2d_forward", x.dtype), y.size,
                       (x, y, indices, np.int32(with_indices), self._planes(x.shape),
                        *_i32(h, w, oh, ow, *kernel_size, *stride, *padding, *dilation)))
        return y, (indices if with_indices else None)

    def max_pool2d_backward(self, dy, indices, x_shape, kernel_size, stride, padding, dilation):
        dx = self.empty(x_shape, dy.dtype)
        self.launch_1d(self._kernel("max_pool2d_backward", dy.dtype), dx.size,
                       (dy, indices, dx, self._planes(x_shape),
                        *_i32(*x_shape[2:], *dy.shape[2:], *kernel_size, *stride, *padding, *dilation)))
        return dx

    def avg_pool2d(self, x, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
        n, c, h, w = x.shape
        y = self.empty((n, c, *out_size), x.dtype)
        self.launch_1d(self._kernel("avg_pool2d_forward", x.dtype), y.size,
                       (x, y, self._planes(x.shape), *_i32(h, w, *out_size, *kernel_size, *stride, *padding,
                                                           count_include_pad, divisor_override or 0)))
        return y

    def avg_pool2d_backward(self, dy, x_shape, kernel_size, stride, padding, count_include_pad, divisor_override):
        dx = self.empty(x_shape, dy.dtype)
        self.launch_1d(self._kernel("avg_pool2d_backward", dy.dtype), dx.size,
                       (dy, dx, self._planes(x_shape), *_i32(*x_shape[2:], *dy.shape[2:], *kernel_size, *stride,
                                                             *padding, count_include_pad, divisor_override or 0)))
        return dx

    def adaptive_avg_pool2d(self, x, out_size):
        y = self.empty((*x.shape[:2], *out_size), x.dtype)
        self.launch_1d(self._kernel("adaptive_avg_pool2d_forward", x.dtype), y.size,
                       (x, y, self._planes(x.shape), *_i32(*x.shape[2:], *out_size)))
        return y

    def adaptive_avg_pool2d_backward(self, dy, x_shape):
        dx = self.empty(x_shape, dy.dtype)
        self.launch_1d(self._kernel("adaptive_avg_pool2d_backward", dy.dtype), dx.size,
                       (dy, dx, self._planes(x_shape), *_i32(*x_shape[2:], *dy.shape[2:])))
        return dx

    def adaptive_max_pool2d(self, x, out_size):
        y = self.empty((*x.shape[:2], *out_size), x.dtype)
        indices = self.empty(y.shape, np.int64)
        self.launch_1d(self._kernel("adaptive_max_pool2d_forward", x.dtype), y.size,
                       (x, y, indices, self._planes(x.shape), *_i32(*x.shape[2:], *out_size)))
        return y, indices

    def adaptive_max_pool2d_backward(self, dy, indices, x_shape):
        dx = self.empty(x_shape, dy.dtype)
        self.launch_1d(self._kernel("adaptive_max_pool2d_backward", dy.dtype), dx.size,
                       (dy, indices, dx, self._planes(x_shape), *_i32(*x_shape[2:], *dy.shape[2:])))
        return dx

    def _gem_args(self, x_shape, out_size, kernel_size, stride, eps, dtype):
        return (self._planes(x_shape), *_i32(*x_shape[2:], *out_size, *kernel_size, *stride), dtype.type(eps))

    def gem(self, x, p, eps, kernel_size, stride, out_size):
        y = self.empty((*x.shape[:2], *out_size), x.dtype)
        self.launch_1d(self._kernel("gem_forward", x.dtype), y.size,
                       (x, p, y) + self._gem_args(x.shape, out_size, kernel_size, stride, eps, x.dtype))
        return y

    def gem_backward(self, dy, x, p, eps, kernel_size, stride, need_dx, need_dp):
        args = self._gem_args(x.shape, dy.shape[2:], kernel_size, stride, eps, x.dtype)
        coef = self.empty(dy.shape, x.dtype)
        partial = self.empty((GEM_REDUCE_BLOCKS,), x.dtype)
        # A fixed grid (not sized by the data): the per-block partial sums, and so dp, are the same
        # bits on every run and every device.
        self._kernel("gem_backward_coef", x.dtype)((GEM_REDUCE_BLOCKS,), (REDUCE_BLOCK,),
                                                             (x, p, dy, coef, partial) + args)
        dp = None
        if need_dp:
            dp = self.empty((1,), x.dtype)
            self._kernel("sum_reduce", x.dtype)((1,), (REDUCE_BLOCK,),
                                                          (partial, dp, np.int32(GEM_REDUCE_BLOCKS)))
        dx = None
        if need_dx:
            dx = self.empty(x.shape, x.dtype)
            self.launch_1d(self._kernel("gem_backward_dx", x.dtype), dx.size, (x, p, coef, dx) + args)
        return dx, dp
