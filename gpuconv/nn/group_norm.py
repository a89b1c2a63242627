"""GroupNorm."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..backend import get_backend
from .module import Module
from .parameter import Parameter


class GroupNorm(Module):
    """Normalizes each sample over groups of channels, PyTorch's ``nn.GroupNorm``.

    Args:
        num_groups: G, dividing num_channels; num_channels: C.
        eps: added to the variance; affine: learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
    Shapes:
        (N, C, *) -> same.
    Keeps for backward: its input and the per-(sample, group) mean and 1/std (2*N*G values).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *,
                 dtype: Any = None):
        super().__init__()
        for name, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if num_channels % num_groups:
            raise ValueError(f"num_groups={num_groups} must divide num_channels={num_channels}")
        if not isinstance(eps, (int, float, np.integer, np.floating)) or isinstance(eps, bool) or not 0 < eps < np.inf:
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        dtype = np.dtype(dtype or np.float32)
        xp = get_backend().xp
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = float(eps)
        self.affine = bool(affine)
        if self.affine:
            self.weight = Parameter(xp.ones(num_channels, dtype=dtype))
            self.bias = Parameter(xp.zeros(num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        self.output_shape(tuple(x.shape))
        y = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return y

    def output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm expects input shape (N, {self.num_channels}, *), got {tuple(input_shape)}")
        return tuple(input_shape)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


__all__ = ["GroupNorm"]
