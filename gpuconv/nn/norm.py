"""BatchNorm2d and LayerNorm."""

from __future__ import annotations

from typing import Any

import math

import numpy as np

from .. import functional as F
from ..backend import get_backend
from .module import Module, check_input_size
from .parameter import Parameter


class BatchNorm2d(Module):
    """Batch normalization over (N, C, H, W) per channel, PyTorch's ``nn.BatchNorm2d``.

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: weight of the new batch in the running estimates; None is a cumulative average
            (factor 1 / num_batches_tracked).
        affine: learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
        track_running_stats: keep ``running_mean`` / ``running_var`` / ``num_batches_tracked`` buffers
            and use them in eval mode; without them batch statistics are used in both modes.
    Keeps for backward: its input and the batch mean and 1/std, N*C*H*W*itemsize + 2*C*itemsize
    bytes: what its backward reads, and no normalized copy (x-hat is recomputed from them).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype: Any = None):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        dtype = np.dtype(dtype or np.float32)
        be = get_backend()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(be.xp.ones(num_features, dtype=dtype))
            self.bias = Parameter(be.xp.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", be.xp.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", be.xp.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", be.xp.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x: Any) -> Any:
        check_input_size(x, 4, 1, self.num_features, f"(N, {self.num_features}, H, W)", "num_features")
        count = None
        if self.training and self.track_running_stats:
            get_backend().count_step(self.num_batches_tracked)
            if self.momentum is None:
                count = int(self.num_batches_tracked)
        batch_stats = self.training or self.running_mean is None
        # Running statistics are updated only in training mode, and used only in eval mode.
        use_running = not self.training or self.track_running_stats
        return F.batch_norm(
            x, self.running_mean if use_running else None, self.running_var if use_running else None,
            self.weight, self.bias, training=batch_stats, momentum=self.momentum, eps=self.eps,
            num_batches_tracked=count)

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d expects input shape (N, {self.num_features}, H, W), got {tuple(input_shape)}")
        return tuple(input_shape)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class LayerNorm(Module):
    """Normalizes over the trailing ``normalized_shape`` dimensions, PyTorch's ``nn.LayerNorm``.

    Keeps for backward: its input and the per-row mean and 1/std, prod(x.shape)*itemsize +
    2*rows*itemsize bytes (rows: the product of the leading, not normalized, dimensions).
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True, *,
                 dtype: Any = None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or any(not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ValueError(f"normalized_shape must be a positive int or a tuple of them, got {normalized_shape!r}")
        dtype = np.dtype(dtype or np.float32)
        xp = get_backend().xp
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(xp.ones(self.normalized_shape, dtype=dtype))
            self.register_parameter("bias", Parameter(xp.zeros(self.normalized_shape, dtype=dtype)) if bias else None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        y = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return y

    def output_shape(self, input_shape):
        k = len(self.normalized_shape)
        if tuple(input_shape[-k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm expects input shape (..., {', '.join(map(str, self.normalized_shape))}), "
                             f"got {tuple(input_shape)}")
        return tuple(input_shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class BatchNorm1d(BatchNorm2d):
    """Batch normalization over (N, C) or (N, C, L) per channel, PyTorch's ``nn.BatchNorm1d``
    (arguments, buffers and state-dict keys as :class:`BatchNorm2d`).

    Runs BatchNorm2d's kernels on the input viewed as (N, C, L, 1).
    Keeps for backward: its input and the batch mean and 1/std (2*C values).
    """

    def _check_input_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) not in (2, 3) or shape[1] != self.num_features:
            c = self.num_features
            raise ValueError(f"BatchNorm1d expects input shape (N, {c}) or (N, {c}, L), got {tuple(shape)}")

    @staticmethod
    def _as_4d(shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape) + (1,) * (4 - len(shape))

    def forward(self, x: Any) -> Any:
        self._check_input_shape(tuple(x.shape))
        if self.training and math.prod(x.shape) // self.num_features <= 1:
            raise ValueError(f"BatchNorm1d in training mode needs more than 1 value per channel, got input shape "
                             f"{tuple(x.shape)} (use a batch of 2 or more, or eval())")
        return super().forward(x.reshape(self._as_4d(x.shape))).reshape(x.shape)

    def output_shape(self, input_shape):
        self._check_input_shape(tuple(input_shape))
        return tuple(input_shape)


__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]
