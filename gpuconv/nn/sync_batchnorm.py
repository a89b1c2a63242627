"""SyncBatchNorm: batch normalization whose batch statistics span every rank's batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import distributed as dist
from ..autograd import Function
from ..backend import get_array_module, get_backend
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d


def _channel_axes(ndim: int) -> tuple[int, ...]:
    return (0,) + tuple(range(2, ndim))


def _per_channel(v: Any, ndim: int) -> Any:
    """(C,) as (1, C, 1, ...) for broadcasting against an (N, C, ...) input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


class _SyncBatchNormFunction(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias with mean and var over every rank's (N, *)
    values per channel; backward all-reduces the two per-channel sums its input gradient needs."""

    @staticmethod
    def forward(ctx: Any, x: Any, weight: Any, bias: Any, eps: float, running: tuple | None) -> Any:
        a = x.data
        xp = get_array_module(a)
        axes = _channel_axes(a.ndim)
        count = a.size // a.shape[1]
        # Per rank: count, mean and centred sum of squares in float64; combined exactly across the
        # ranks (Chan et al.), so the variance does not cancel as E[x^2] - E[x]^2 would.
        local_mean = a.mean(axis=axes, dtype=np.float64)
        centred = a.astype(np.float64) - _per_channel(local_mean, a.ndim)
        local_m2 = (centred * centred).sum(axis=axes)
        row = xp.concatenate([xp.asarray([float(count)]), local_mean, local_m2])
        rows = dist.all_gather(row)
        counts, means, m2s = rows[:, 0], rows[:, 1:1 + a.shape[1]], rows[:, 1 + a.shape[1]:]
        total = counts.sum()
        if total <= 1:
            raise ValueError(f"SyncBatchNorm in training mode needs more than 1 value per channel over all ranks, "
                             f"got {int(total)}")
        mean = (counts[:, None] * means).sum(axis=0) / total
        m2 = (m2s + counts[:, None] * (means - mean) ** 2).sum(axis=0)
        var = m2 / total
        invstd = 1.0 / xp.sqrt(var + eps)
        if running is not None:
            running_mean, running_var, factor = running
            running_mean[...] = ((1 - factor) * running_mean + factor * mean).astype(running_mean.dtype)
            running_var[...] = ((1 - factor) * running_var + factor * m2 / (total - 1)).astype(running_var.dtype)
        mean, invstd = mean.astype(a.dtype), invstd.astype(a.dtype)
        y = (a - _per_channel(mean, a.ndim)) * _per_channel(invstd, a.ndim)
        if weight is not None:
            y = y * _per_channel(weight.data, a.ndim) + _per_channel(bias.data, a.ndim)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.total = total
        return y

    @staticmethod
    def backward(ctx: Any, grad_output: Any) -> tuple:
        x, weight, mean, invstd = ctx.saved_tensors
        a, dy = x.data, grad_output.data
        xp = get_array_module(a)
        axes = _channel_axes(a.ndim)
        xhat = (a - _per_channel(mean.data, a.ndim)) * _per_channel(invstd.data, a.ndim)
        local_dbias = dy.sum(axis=axes, dtype=np.float64)
        local_dweight = (dy * xhat).sum(axis=axes, dtype=np.float64)
        # The input gradient needs both sums over every rank's samples (the statistics are shared).
        sums = dist.all_reduce(xp.concatenate([local_dbias, local_dweight]), op="sum")
        channels = a.shape[1]
        mean_dy = (sums[:channels] / ctx.total).astype(a.dtype)
        mean_dy_xhat = (sums[channels:] / ctx.total).astype(a.dtype)
        scale = invstd.data if weight is None else invstd.data * weight.data
        dx = _per_channel(scale, a.ndim) * (dy - _per_channel(mean_dy, a.ndim) - xhat * _per_channel(mean_dy_xhat, a.ndim))
        if weight is None:
            return dx, None, None, None, None
        # Parameter gradients stay local: DistributedDataParallel averages them over the ranks.
        return dx, local_dweight.astype(a.dtype), local_dbias.astype(a.dtype), None, None


class SyncBatchNorm(BatchNorm2d):
    """Batch normalization over (N, C, *) whose training-mode statistics are computed over the
    batches of every rank of the process group (PyTorch's ``nn.SyncBatchNorm``). In eval mode, or
    without an initialized group of more than one rank, it is BatchNorm1d/BatchNorm2d.

    Arguments, parameters, buffers and state-dict keys are BatchNorm2d's. Training-mode cost per
    forward: one all-gather of 2C+1 float64 values; per backward: one all-reduce of 2C.
    """

    def forward(self, x: Any) -> Any:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            if len(x.shape) == 4:
                return super().forward(x)
            return BatchNorm1d.forward(self, x)
        if len(x.shape) < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm expects input shape (N, {self.num_features}, *), got {tuple(x.shape)}")
        running = None
        if self.track_running_stats:
            get_backend().count_step(self.num_batches_tracked)
            factor = 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
            running = (self.running_mean, self.running_var, factor)
        from ..autograd import Tensor
        if not isinstance(x, Tensor):
            x = Tensor(x)
        return _SyncBatchNormFunction.apply(x, self.weight, self.bias, self.eps, running)

    # BatchNorm1d's shape helpers, for the eval path on (N, C) and (N, C, L) inputs.
    _check_input_shape = BatchNorm1d._check_input_shape
    _as_4d = staticmethod(BatchNorm1d._as_4d)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """``module`` with every BatchNorm1d/BatchNorm2d replaced by a SyncBatchNorm that shares
        its parameters and buffers (the same objects) and its mode; returns the new root."""
        if isinstance(module, BatchNorm2d) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            sync.register_parameter("weight", module.weight)
            sync.register_parameter("bias", module.bias)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                sync.register_buffer(name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child)
            if converted is not child:
                setattr(module, name, converted)
        return module


__all__ = ["SyncBatchNorm"]
