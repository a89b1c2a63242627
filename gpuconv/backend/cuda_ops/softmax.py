"""Launchers for kernels/softmax.cu (shared by the cupy and emulated backends): softmax and
log-softmax along one axis, forward and backward, one launch each, allocating only the result."""

from __future__ import annotations

import numpy as np


def _layout(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(rows, classes, inner) of a C-contiguous array of ``shape`` along ``axis``."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer * inner, int(shape[axis]), inner


class SoftmaxKernels:
    def softmax(self, x, axis: int, log: bool = False):
        """softmax (or, with ``log``, log-softmax) of ``x`` along ``axis``."""
        x = self.contiguous(x)
        y = self.empty(x.shape, x.dtype)
        rows, classes, inner = _layout(x.shape, axis)
        if classes:
            self.launch_1d(self.kernel("softmax.cu", "softmax_forward", x.dtype), rows,
                           (x, y, np.int64(rows), np.int32(classes), np.int64(inner), np.int32(log)))
        return y

    def softmax_backward(self, dy, y, axis: int, log: bool = False):
        """dx of :meth:`softmax` from its output ``y``."""
        dy, y = self.contiguous(dy), self.contiguous(y)
        dx = self.empty(y.shape, y.dtype)
        rows, classes, inner = _layout(y.shape, axis)
        if classes:
            self.launch_1d(self.kernel("softmax.cu", "softmax_backward", y.dtype), rows,
                           (dy, y, dx, np.int64(rows), np.int32(classes), np.int64(inner), np.int32(log)))
        return dx
