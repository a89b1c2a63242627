"""ReLU and leaky ReLU forward and backward and dropout's masking, as NumPy expressions (the numpy
backend's counterparts of kernels/elementwise.cu)."""

from __future__ import annotations

import numpy as np


class ElementwiseOps:
    def relu(self, x):
        return np.maximum(x, 0)

    def relu_backward(self, dy, x):
        return dy * (x > 0)

    def leaky_relu(self, x, negative_slope):
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    def leaky_relu_backward(self, dy, x, negative_slope):
        return np.where(x > 0, dy, dy * dy.dtype.type(negative_slope))

    def dropout_apply(self, x, mask, scale):
        return x * (mask.astype(x.dtype) * scale)
