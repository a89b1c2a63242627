"""Launchers for kernels/batchnorm.cu (shared by the cupy and emulated backends).

Launches per call: training forward 2 (statistics with their finalize fused in, then the affine
map), or 1 when each channel gets a single reduction block (small tensors: one kernel computes
the statistics and normalizes); eval forward 1; backward 2 (reduction with its finalize fused in,
then dx), or 1 likewise.
"""

from __future__ import annotations

import numpy as np

REDUCE_BLOCK = 256  # kBlock in batchnorm.cu
# Reduction grid: about TARGET_BLOCKS blocks over all channels (two waves of 256-thread blocks on a
# 132-SM H100 at 8 resident blocks per SM), but no block with fewer than MIN_PER_BLOCK elements (4
# per thread: below that a block's fixed cost and the merge dominate). At batch 32 that gives
# 64x112x112 and 64x56x56: 33 x 64 = 2112 blocks; 128x28x28: 17 x 128 = 2176; 256x14x14: 6 x 256 =
# 1536; 512x7x7: 1 x 512 (1568 elements per channel: a 6 MB tensor, launch-bound whatever the grid).
TARGET_BLOCKS = 2112
MIN_PER_BLOCK = 1024
ELEMENTWISE_BLOCK = 256
# Elements per thread in the elementwise kernels: a plane is covered by ceil(hw / (block * this))
# blocks in grid.y (at most MAX_GRID_Y; the kernels stride over the rest).
ELEMENTWISE_ITEMS = 4
MAX_GRID_Y = 65535
MAX_PLANE = 2**31 - 1  # hw is a 32-bit int in the kernels
MAX_CACHED_PLANS = 4096  # launch plans kept per backend (the cache is cleared when full)


def reduction_split(count: int, channels: int, lanes: int = 1) -> tuple[int, int]:
    """(splits, chunk): how the N*H*W elements of each channel are cut among blocks; ``chunk`` is a
    multiple of ``lanes`` (the vector width of a vectorized launch)."""
    if channels > MAX_GRID_Y:
        # The reduction grid has one row of blocks per channel (grid.y).
        raise ValueError(f"batch_norm kernels support at most {MAX_GRID_Y} channels, got {channels}")
    splits = max(1, min(-(-TARGET_BLOCKS // channels), count // MIN_PER_BLOCK))
    chunk = -(-count // splits)
    chunk = -(-chunk // lanes) * lanes
    return -(-count // chunk), chunk


def _address(a) -> int:
    """The device (cupy) or host (numpy) address of ``a``'s first element."""
    if isinstance(a, np.ndarray):
        return a.__array_interface__["data"][0]  # cheaper than a.ctypes.data
    return a.data.ptr


def vectorizable(hw: int, *arrays) -> bool:
    """Whether the kernels may use 16-byte accesses: whole vectors per plane, and every array
    starting on a 16-byte boundary (a contiguous view into a larger array may not)."""
    lanes = 16 // arrays[0].dtype.itemsize
    return hw % lanes == 0 and all(_address(a) % 16 == 0 for a in arrays)


def _elementwise_launch(planes: int, hw: int, lanes: int) -> tuple[tuple[int, int], tuple[int], int]:
    """(grid, block, ppb) of the per-plane elementwise kernels. ``lanes`` elements per thread step
    (1, or the vector width). A plane of at most 128 steps gets the smallest power-of-two number of
    warps that covers it and shares its block with others (7x7 = 49 elements: 2 warps, 4 planes per
    256-thread block); a larger plane gets whole blocks, its chunks spread over grid.y."""
    steps = -(-hw // lanes)
    threads = 32
    while threads < steps and threads < ELEMENTWISE_BLOCK:
        threads *= 2
    if threads < ELEMENTWISE_BLOCK:
        ppb = ELEMENTWISE_BLOCK // threads
        return (-(-planes // ppb), 1), (ELEMENTWISE_BLOCK,), ppb
    chunks = max(1, min(-(-steps // (ELEMENTWISE_BLOCK * ELEMENTWISE_ITEMS)), MAX_GRID_Y))
    return (planes, chunks), (ELEMENTWISE_BLOCK,), 1


def _check_plane(hw: int) -> None:
    if hw > MAX_PLANE:
        raise ValueError(f"batch_norm kernels support planes of at most {MAX_PLANE} elements (H*W), got {hw}")


class BatchNormKernels:
    def _bn_counters(self, channels: int):
        """Per-channel tickets of the fused finalize: zeros between launches (the finalizing block
        resets its entry). One int32 array per (device, stream), kept for the backend's life, so
        that launches on one stream are ordered and two streams never share tickets."""
        cache = self.__dict__.setdefault("_bn_counter_cache", {})
        stream = self.xp.cuda.get_current_stream().ptr if hasattr(self.xp, "cuda") else None
        key = (self.module_cache_key(), stream)
        counters = cache.get(key)
        if counters is None or counters.size < channels:
            counters = cache[key] = self.zeros((max(channels, 64),), np.int32)
        return counters

    def _bn_plan(self, op: str, shape: tuple, dtype, vec: bool) -> tuple:
        """(kernel, grid, block, splits, shape scalars) of ``op`` for x of ``shape``, computed once per
        configuration: converting Python ints to NumPy scalars and sizing grids costs more host
        time than the launch itself on small tensors."""
        def make() -> tuple:
            n, c, h, w = shape
            _check_plane(h * w)
            lanes = 16 // dtype.itemsize if vec else 1
            kernel = self.kernel("batchnorm.cu", op, dtype)
            if op in ("batch_norm_train_fused", "batch_norm_backward_fused"):
                return kernel, (1, c), (REDUCE_BLOCK,), 1, (np.int32(n), np.int32(c), np.int32(h * w))
            if op in ("batch_norm_stats", "batch_norm_backward_reduce"):
                splits, chunk = reduction_split(n * h * w, c, lanes)
                return (kernel, (splits, c), (REDUCE_BLOCK,), splits,
                        (np.int32(n), np.int32(c), np.int32(h * w), np.int64(chunk)))
            grid, block, ppb = _elementwise_launch(n * c, h * w, lanes)
            return kernel, grid, block, 1, (np.int64(n * c), np.int32(c), np.int32(h * w), np.int32(ppb))

        key = (self.module_cache_key(), op, shape, dtype, vec, TARGET_BLOCKS, MIN_PER_BLOCK)  # tests change these
        return self.cached_plan("_bn_plans", key, make, MAX_CACHED_PLANS)

    def _batch_norm_stats(self, x, eps, running_mean, running_var, momentum):
        """Batch mean and 1/sqrt(biased var + eps) per channel; updates the running stats in place
        (momentum = the factor for this batch) when they are given. One launch.

        Allocates, beyond the two (C,) results (one (2, C) buffer): a (C, splits, 2) partial buffer
        of x's dtype when splits > 1 (see :func:`reduction_split`; never more than about
        2 * TARGET_BLOCKS + 2 * C elements), freed on return; and once per (device, stream) a
        persistent int32 ticket array of max(C, 64) elements (grown when a wider layer comes).
        """
        c = x.shape[1]
        dtype = x.dtype
        vec = vectorizable(x.shape[2] * x.shape[3], x)
        kernel, grid, block, splits, scalars = self._bn_plan("batch_norm_stats", x.shape, dtype, vec)
        stats = self.empty((2, c), dtype)
        mean, invstd = stats[0], stats[1]
        partial = self.empty((c, splits, 2), dtype) if splits > 1 else stats
        update = running_mean is not None
        kernel(grid, block,
               (x, partial, self._bn_counters(c), mean, invstd, running_mean if update else mean,
                running_var if update else invstd, *scalars, dtype.type(eps), dtype.type(momentum if update else 0.0),
                np.int32(update), np.int32(vec)))
        return mean, invstd

    def batch_norm_affine(self, x, mean, src, src_is_var, weight, bias, eps):
        """y = (x - mean) * inv * weight + bias with inv = src, or 1/sqrt(src + eps) when src_is_var.
        One launch; allocates only y."""
        y = self.empty(x.shape, x.dtype)
        if y.size == 0:
            return y
        vec = vectorizable(x.shape[2] * x.shape[3], x, y)
        kernel, grid, block, _, scalars = self._bn_plan("batch_norm_affine", x.shape, x.dtype, vec)
        kernel(grid, block,
               (x, y, mean, src, mean if weight is None else weight, mean if bias is None else bias, *scalars,
                np.int32(weight is not None), np.int32(bias is not None), np.int32(src_is_var), x.dtype.type(eps),
                np.int32(vec)))
        return y

    def _batch_norm_backward_sums(self, dy, x, mean, invstd):
        """(sum of dy, sum of dy * xhat) per channel. One launch.

        Allocates, beyond the two (C,) results (one (2, C) buffer): a (C, splits, 2) partial buffer
        of x's dtype when splits > 1, freed on return (as :meth:`batch_norm_stats`; the same
        persistent tickets)."""
        c = x.shape[1]
        dtype = x.dtype
        vec = vectorizable(x.shape[2] * x.shape[3], dy, x)
        kernel, grid, block, splits, scalars = self._bn_plan("batch_norm_backward_reduce", x.shape, dtype, vec)
        sums = self.empty((2, c), dtype)
        partial = self.empty((c, splits, 2), dtype) if splits > 1 else sums
        kernel(grid, block,
               (dy, x, mean, invstd, partial, self._bn_counters(c), sums[0], sums[1], *scalars, np.int32(vec)))
        return sums[0], sums[1]

    def _batch_norm_backward_dx(self, dy, x, mean, invstd, weight, sums, training):
        """dx of batch norm; ``sums`` = (sum_dy, sum_dy_xhat), needed (and read) only when training.
        One launch; allocates only dx."""
        n, c, h, w = x.shape
        dx = self.empty(x.shape, x.dtype)
        if dx.size == 0:
            return dx
        sum_dy, sum_dy_xhat = sums if training else (mean, mean)
        vec = vectorizable(h * w, dy, x, dx)
        kernel, grid, block, _, scalars = self._bn_plan("batch_norm_backward_dx", x.shape, x.dtype, vec)
        kernel(grid, block,
               (dy, x, mean, invstd, mean if weight is None else weight, sum_dy, sum_dy_xhat, dx, *scalars,
                np.int64(n * h * w), np.int32(weight is not None), np.int32(bool(training)), np.int32(vec)))
        return dx

    def batch_norm_train(self, x, eps, running_mean, running_var, momentum, weight, bias):
        """Training forward: (y, save_mean, save_invstd) = batch_norm_stats then batch_norm_affine,
        in one launch when every channel gets a single reduction block. Allocates y and one (2, C)
        buffer for the statistics (plus, on the two-launch path, what batch_norm_stats allocates)."""
        n, c, h, w = x.shape
        if reduction_split(n * h * w, c)[0] > 1 or x.size == 0:
            mean, invstd = self._batch_norm_stats(x, eps, running_mean, running_var, momentum)
            return self.batch_norm_affine(x, mean, invstd, False, weight, bias, eps), mean, invstd
        dtype = x.dtype
        y = self.empty(x.shape, dtype)
        vec = vectorizable(h * w, x, y)
        kernel, grid, block, _, scalars = self._bn_plan("batch_norm_train_fused", x.shape, dtype, vec)
        stats = self.empty((2, c), dtype)
        mean, invstd = stats[0], stats[1]
        update = running_mean is not None
        kernel(grid, block,
               (x, y, mean, invstd, running_mean if update else mean, running_var if update else invstd,
                mean if weight is None else weight, mean if bias is None else bias, *scalars, dtype.type(eps),
                dtype.type(momentum if update else 0.0), np.int32(update), np.int32(weight is not None),
                np.int32(bias is not None), np.int32(vec)))
        return y, mean, invstd

    def batch_norm_backward(self, dy, x, mean, invstd, weight, training, need_dx, need_sums):
        """(dx or None, (sum_dy, sum_dy_xhat) or None): batch_norm_backward_sums and
        batch_norm_backward_dx, in one launch for a training backward that needs both when every
        channel gets a single reduction block. Allocates dx and one (2, C) buffer for the sums."""
        n, c, h, w = x.shape
        fused = (training and need_dx and need_sums and x.size > 0 and reduction_split(n * h * w, c)[0] == 1)
        if not fused:
            sums = self._batch_norm_backward_sums(dy, x, mean, invstd) if need_sums else None
            dx = self._batch_norm_backward_dx(dy, x, mean, invstd, weight, sums, training) if need_dx else None
            return dx, sums
        dtype = x.dtype
        dx = self.empty(x.shape, dtype)
        vec = vectorizable(h * w, dy, x, dx)
        kernel, grid, block, _, scalars = self._bn_plan("batch_norm_backward_fused", x.shape, dtype, vec)
        sums = self.empty((2, c), dtype)
        kernel(grid, block, (dy, x, mean, invstd, mean if weight is None else weight, sums[0], sums[1], dx, *scalars,
                             np.int32(weight is not None), np.int32(vec)))
        return dx, (sums[0], sums[1])

