"""Launchers for kernels/batchnorm.cu (shared by the cupy and emulated backends)."""

from __future__ import annotations

import numpy as np

REDUCE_BLOCK = 256  # kBlock in batchnorm.cu
# Reduction grid: about TARGET_BLOCKS blocks over all channels (enough to fill a large GPU), but
# no block with fewer than MIN_PER_BLOCK elements (a block's fixed cost dominates below that).
TARGET_BLOCKS = 1024
MIN_PER_BLOCK = 4096
AFFINE_BLOCK = 256
# Elements per thread in the elementwise kernels: a plane is covered by ceil(hw / (block * this))
# blocks in grid.y (at most MAX_GRID_Y; the kernels stride over the rest).
AFFINE_ITEMS = 4
MAX_GRID_Y = 65535


def reduction_split(count: int, channels: int) -> tuple[int, int]:
    """(splits, chunk): how the N*H*W elements of each channel are cut among blocks."""
    if channels > MAX_GRID_Y:
        # The reduction grid has one row of blocks per channel (grid.y).
        raise ValueError(f"batch_norm kernels support at most {MAX_GRID_Y} channels, got {channels}")
    splits = max(1, min(-(-TARGET_BLOCKS // channels), count // MIN_PER_BLOCK))
    chunk = -(-count // splits)
    return -(-count // chunk), chunk


def _address(a) -> int:
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data  # cupy / numpy


def vectorizable(hw: int, *arrays) -> bool:
    """Whether the elementwise kernels may use 16-byte accesses: whole vectors per plane, and every
    array starting on a 16-byte boundary (a contiguous view into a larger array may not)."""
    lanes = 16 // arrays[0].dtype.itemsize
    return hw % lanes == 0 and all(_address(a) % 16 == 0 for a in arrays)


def _elementwise_launch(planes: int, hw: int) -> tuple[tuple[int, int], tuple[int]]:
    """(grid, block) of the per-plane elementwise kernels: block (plane, chunk); a small plane gets a
    block of just enough whole warps (7x7 = 49 elements: 64 threads, not 256)."""
    block = min(AFFINE_BLOCK, -(-hw // 32) * 32)
    return (planes, max(1, min(-(-hw // (block * AFFINE_ITEMS)), MAX_GRID_Y))), (block,)


class BatchNormKernels:
    def batch_norm_stats(self, x, eps, running_mean, running_var, momentum):
        """Batch mean and 1/sqrt(biased var + eps) per channel; updates the running stats in place
        (momentum = the factor for this batch) when they are given."""
        n, c, h, w = x.shape
        hw, count = h * w, n * h * w
        splits, chunk = reduction_split(count, c)
        dtype = x.dtype
        pcount = self.empty((c, splits), np.int64)
        pmean = self.empty((c, splits), dtype)
        pm2 = self.empty((c, splits), dtype)
        self.kernel("batchnorm.cu", "batch_norm_stats_partial", dtype)(
            (splits, c), (REDUCE_BLOCK,), (x, pcount, pmean, pm2, np.int32(n), np.int32(c), np.int64(hw),
                                           np.int64(chunk)))
        mean = self.empty((c,), dtype)
        invstd = self.empty((c,), dtype)
        update = running_mean is not None
        self.kernel("batchnorm.cu", "batch_norm_stats_finalize", dtype)(
            (c,), (REDUCE_BLOCK,),
            (x, pcount, pmean, pm2, mean, invstd, running_mean if update else mean,
             running_var if update else invstd, np.int64(hw), np.int32(splits), dtype.type(eps),
             dtype.type(momentum if update else 0.0), np.int32(update)))
        return mean, invstd

    def batch_norm_affine(self, x, mean, src, src_is_var, weight, bias, eps):
        """y = (x - mean) * inv * weight + bias with inv = src, or 1/sqrt(src + eps) when src_is_var."""
        n, c, h, w = x.shape
        y = self.empty(x.shape, x.dtype)
        if y.size == 0:
            return y
        self.kernel("batchnorm.cu", "batch_norm_affine", x.dtype)(
            *_elementwise_launch(n * c, h * w),
            (x, y, mean, src, mean if weight is None else weight, mean if bias is None else bias, np.int32(c),
             np.int64(h * w), np.int32(weight is not None), np.int32(bias is not None), np.int32(src_is_var),
             x.dtype.type(eps), np.int32(vectorizable(h * w, x, y))))
        return y

    def batch_norm_backward_sums(self, dy, x, mean, invstd):
        """(sum of dy, sum of dy * xhat) per channel."""
        n, c, h, w = x.shape
        hw, count = h * w, n * h * w
        splits, chunk = reduction_split(count, c)
        dtype = x.dtype
        psum_dy = self.empty((c, splits), dtype)
        psum_dyx = self.empty((c, splits), dtype)
        self.kernel("batchnorm.cu", "batch_norm_backward_partial", dtype)(
            (splits, c), (REDUCE_BLOCK,), (dy, x, mean, psum_dy, psum_dyx, np.int32(n), np.int32(c), np.int64(hw),
                                           np.int64(chunk)))
        sum_dy = self.empty((c,), dtype)
        sum_dy_xhat = self.empty((c,), dtype)
        self.kernel("batchnorm.cu", "batch_norm_backward_finalize", dtype)(
            (c,), (REDUCE_BLOCK,), (psum_dy, psum_dyx, invstd, sum_dy, sum_dy_xhat, np.int32(splits)))
        return sum_dy, sum_dy_xhat

    def batch_norm_backward_dx(self, dy, x, mean, invstd, weight, sums, training):
        """dx of batch norm; ``sums`` = (sum_dy, sum_dy_xhat), needed (and read) only when training."""
        n, c, h, w = x.shape
        dx = self.empty(x.shape, x.dtype)
        sum_dy, sum_dy_xhat = sums if training else (mean, mean)
        self.kernel("batchnorm.cu", "batch_norm_backward_dx", x.dtype)(
            *_elementwise_launch(n * c, h * w),
            (dy, x, mean, invstd, mean if weight is None else weight, sum_dy, sum_dy_xhat, dx, np.int32(c),
             np.int64(h * w), np.int64(n * h * w), np.int32(weight is not None), np.int32(bool(training)),
             np.int32(vectorizable(h * w, dy, x, dx))))
        return dx
