"""Launchers for kernels/softmax.cu (shared by the cupy and emulated backends): softmax and
log-softmax along one axis, forward and backward, one launch each, allocating only the result.

Who handles a row (see kernels/rows.cuh): when the axis is the last one of the contiguous view
(inner == 1) its elements are adjacent, so a warp (up to :data:`WARP_ROW_LIMIT` elements) or a block
(wider rows) reads each row coalesced; otherwise neighbouring rows are adjacent and a thread per
row reads them coalesced across threads.
"""

from __future__ import annotations

import numpy as np

# A row of up to this many elements gets a warp (at most 8 per lane), a wider one a block of
# ROW_BLOCK threads: 1000 classes then take 4 per thread, and even a few rows fill several warps.
WARP_ROW_LIMIT = 256
ROW_BLOCK = 256
MAX_GRID = 65535


def _layout(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(rows, classes, inner) of a C-contiguous array of ``shape`` along ``axis``."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer * inner, int(shape[axis]), inner


def row_schedule(rows: int, classes: int, inner: int) -> tuple[str, tuple[int], tuple[int]]:
    """(kernel name suffix, grid, block) of a row kernel over ``rows`` rows of ``classes`` elements
    ``inner`` apart: "" (a thread per row), "_warp" or "_block". Also used by the loss launchers."""
    if inner != 1:
        return "", (min(-(-rows // ROW_BLOCK), MAX_GRID),), (ROW_BLOCK,)
    if classes <= WARP_ROW_LIMIT:
        warps = ROW_BLOCK // 32
        return "_warp", (min(-(-rows // warps), MAX_GRID),), (ROW_BLOCK,)
    return "_block", (min(rows, MAX_GRID),), (ROW_BLOCK,)


class SoftmaxKernels:
    def softmax(self, x, axis: int, log: bool = False):
        """softmax (or, with ``log``, log-softmax) of ``x`` along ``axis``."""
        x = self.contiguous(x)
        y = self.empty(x.shape, x.dtype)
        rows, classes, inner = _layout(x.shape, axis)
        if classes and rows:
            suffix, grid, block = row_schedule(rows, classes, inner)
            self.kernel("softmax.cu", "softmax_forward" + suffix, x.dtype)(
                grid, block, (x, y, np.int64(rows), np.int32(classes), np.int64(inner), np.int32(log)))
        return y

    def softmax_backward(self, dy, y, axis: int, log: bool = False):
        """dx of :meth:`softmax` from its output ``y``."""
        dy, y = self.contiguous(dy), self.contiguous(y)
        dx = self.empty(y.shape, y.dtype)
        rows, classes, inner = _layout(y.shape, axis)
        if classes and rows:
            suffix, grid, block = row_schedule(rows, classes, inner)
            self.kernel("softmax.cu", "softmax_backward" + suffix, y.dtype)(
                grid, block, (dy, y, dx, np.int64(rows), np.int32(classes), np.int64(inner), np.int32(log)))
        return dx
