"""Batch normalization on NumPy.

Statistics are two-pass (the mean, then the variance of the centred data), with float64
accumulators, so a float32 batch whose mean is large against its spread keeps its precision.
"""

from __future__ import annotations

import numpy as np

_AXES = (0, 2, 3)


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


class BatchNormOps:
    def batch_norm_stats(self, x, eps, running_mean, running_var, momentum):
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(axis=_AXES, dtype=np.float64)
        centred = x - _per_channel(mean.astype(x.dtype))
        # The mean was rounded to x.dtype above; remove what is left of it exactly.
        residual = centred.mean(axis=_AXES, dtype=np.float64)
        m2 = np.einsum("nchw,nchw->c", centred, centred, dtype=np.float64) - count * residual * residual
        m2 = np.maximum(m2, 0.0)
        var = m2 / count
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += (momentum * mean).astype(running_mean.dtype)
            running_var *= 1 - momentum
            running_var += (momentum * m2 / (count - 1)).astype(running_var.dtype)
        return mean.astype(x.dtype), (1.0 / np.sqrt(var + eps)).astype(x.dtype)

    def batch_norm_affine(self, x, mean, src, src_is_var, weight, bias, eps):
        inv = 1.0 / np.sqrt(src.astype(np.float64) + eps) if src_is_var else src
        scale = inv if weight is None else inv * weight
        y = x - _per_channel(mean)
        y *= _per_channel(scale.astype(x.dtype))
        if bias is not None:
            y += _per_channel(bias)
        return y

    def batch_norm_backward_sums(self, dy, x, mean, invstd):
        sum_dy = dy.sum(axis=_AXES, dtype=np.float64)
        sum_dyx = np.einsum("nchw,nchw->c", dy, x - _per_channel(mean), dtype=np.float64)
        return sum_dy.astype(x.dtype), (sum_dyx * invstd).astype(x.dtype)

    def batch_norm_backward_dx(self, dy, x, mean, invstd, weight, sums, training):
        scale = invstd if weight is None else invstd * weight
        if not training:
            return dy * _per_channel(scale)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        sum_dy, sum_dy_xhat = sums
        k = sum_dy_xhat / count * invstd
        dx = x - _per_channel(mean)
        dx *= _per_channel(-k)
        dx += dy
        dx -= _per_channel(sum_dy / count)
        dx *= _per_channel(scale)
        return dx
