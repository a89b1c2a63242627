"""Launchers for kernels/elementwise.cu (shared by the cupy and emulated backends): one launch per
call, allocating only the result."""

from __future__ import annotations

import numpy as np

from .batchnorm import vectorizable


class ElementwiseKernels:
    def _map(self, op: str, arrays: tuple, extra: tuple = ()):
        """out = op(arrays...) elementwise over C-contiguous arrays of one shape and dtype."""
        first = arrays[0]
        out = self.empty(first.shape, first.dtype)
        n = first.size
        args = (*arrays, out, np.int64(n), *extra, np.int32(n > 0 and vectorizable(n, *arrays, out)))
        self.launch_1d(self.kernel("elementwise.cu", op, first.dtype), n, args)
        return out

    def relu(self, x):
        return self._map("relu_forward", (x,))

    def relu_backward(self, dy, x):
        return self._map("relu_backward", (dy, x))

    def leaky_relu(self, x, negative_slope):
        return self._map("leaky_relu_forward", (x,), (x.dtype.type(negative_slope),))

    def leaky_relu_backward(self, dy, x, negative_slope):
        return self._map("leaky_relu_backward", (dy, x), (x.dtype.type(negative_slope),))
