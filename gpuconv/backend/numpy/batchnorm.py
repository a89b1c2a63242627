"""Batch normalization on NumPy.

Statistics are two-pass: the mean, then the variance of the centred data. Each (n, c) row of H*W
elements is summed in the input precision (NumPy's pairwise sum; einsum for products), and the
N row sums of a channel in float64, so a float32 batch whose mean is large against its spread
keeps its precision without float64 copies of the data.
"""

from __future__ import annotations

import numpy as np


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], a.shape[1], -1)


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Per-channel float64 sum of a (N, C, H, W) array."""
    return _rows(a).sum(axis=2).sum(axis=0, dtype=np.float64)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel float64 sum of a * b."""
    return np.einsum("ncl,ncl->nc", _rows(a), _rows(b)).sum(axis=0, dtype=np.float64)


class BatchNormOps:
    def _batch_norm_stats(self, x, eps, running_mean, running_var, momentum):
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = _channel_sum(x) / count
        centred = x - _per_channel(mean.astype(x.dtype))
        # The mean was rounded to x.dtype above; the centred data still hold what is left of it,
        # and removing it here is exact algebra, not a cancellation of large terms.
        residual = _channel_sum(centred) / count
        mean += residual
        m2 = np.maximum(_channel_dot(centred, centred) - count * residual * residual, 0.0)
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

    def _batch_norm_backward_sums(self, dy, x, mean, invstd):
        sum_dy = _channel_sum(dy)
        sum_dyx = _channel_dot(dy, x - _per_channel(mean))
        return sum_dy.astype(x.dtype), (sum_dyx * invstd).astype(x.dtype)

    def _batch_norm_backward_dx(self, dy, x, mean, invstd, weight, sums, training):
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

    def batch_norm_train(self, x, eps, running_mean, running_var, momentum, weight, bias):
        """(y, save_mean, save_invstd) of a training forward."""
        mean, invstd = self._batch_norm_stats(x, eps, running_mean, running_var, momentum)
        return self.batch_norm_affine(x, mean, invstd, False, weight, bias, eps), mean, invstd

    def batch_norm_backward(self, dy, x, mean, invstd, weight, training, need_dx, need_sums):
        """(dx or None, (sum_dy, sum_dy_xhat) or None)."""
        sums = self._batch_norm_backward_sums(dy, x, mean, invstd) if need_sums else None
        dx = self._batch_norm_backward_dx(dy, x, mean, invstd, weight, sums, training) if need_dx else None
        return dx, sums
