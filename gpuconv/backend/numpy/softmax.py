"""The numpy backend's softmax and log-softmax along one axis (counterparts of
backend/cuda/softmax.py): the maximum subtracted first, so exp never overflows."""

from __future__ import annotations

import numpy as np


class SoftmaxOps:
    def softmax(self, x, axis: int, log: bool = False):
        if x.size == 0:
            return np.empty_like(x)
        if log:
            z = x - x.max(axis=axis, keepdims=True)
            return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def softmax_backward(self, dy, y, axis: int, log: bool = False):
        if log:
            return dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)
        return y * (dy - (dy * y).sum(axis=axis, keepdims=True))
