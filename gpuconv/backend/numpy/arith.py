"""The numpy backend's counterparts of backend/cuda/arith.py: NumPy expressions (each the expression
the functional layer used before these were backend primitives, so results stay bit for bit)."""

from __future__ import annotations

import numpy as np


class ArithOps:
    def add(self, a, b):
        return a + b

    def add_(self, a, b):
        a += b
        return a

    def fill_(self, a, value):
        a[...] = value
        return a

    def bias_add_(self, y, bias):
        y += bias
        return y

    def sum_except_channel(self, x, axis: int = 1):
        return x.sum(axis=tuple(i for i in range(x.ndim) if i != axis))

    def copy_into(self, dst, src):
        dst[...] = src
        return dst

    def contiguous(self, a):
        # NOTE: np.ascontiguousarray makes a 0-d array 1-d; a 0-d array is always contiguous.
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def count_step(self, counter) -> None:
        counter += 1
