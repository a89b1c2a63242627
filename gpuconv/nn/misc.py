"""Dropout, Flatten, Identity, Dropout2d."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .module import Module


class _Dropout(Module):
    """What Dropout and Dropout2d share: training mode draws a keep mask through ``_apply`` and keeps
    it; eval mode (or p = 0) is the identity and keeps nothing. Subclasses name the functional pair."""

    _apply = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.inplace = inplace

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            return x
        return self._apply(x, self.p, training=True, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_Dropout):
    """Zeroes each element with probability ``p`` in training mode (others scaled by 1/(1-p));
    the identity in eval mode. Keeps for backward: the boolean keep mask, prod(shape) bytes (1 per
    element), not the input."""

    def output_shape(self, input_shape):
        return tuple(input_shape)


class Flatten(Module):
    """Flattens dimensions ``start_dim`` .. ``end_dim`` into one (a view). Keeps for backward: only
    the shape (0 bytes of arrays)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if not shape:
            return (1,)
        start = self.start_dim % len(shape)
        end = self.end_dim % len(shape)
        if start > end:
            raise ValueError(f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for "
                             f"input shape {shape}")
        return shape[:start] + (int(np.prod(shape[start:end + 1], dtype=np.int64)),) + shape[end + 1:]

    def forward(self, x: Any) -> Any:
        return x.reshape(self.output_shape(tuple(x.shape)))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input (a placeholder, e.g. for a BatchNorm2d folded into its Conv2d)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x

    def output_shape(self, input_shape):
        return tuple(input_shape)


class Dropout2d(_Dropout):
    """Zeroes whole channels (N, C, H, W) or (C, H, W) with probability ``p`` in training mode (the
    others scaled by 1/(1-p)), PyTorch's ``nn.Dropout2d``; the identity in eval mode.
    Keeps for backward: the boolean keep mask (1 byte per channel of each sample)."""

    _apply = staticmethod(F.dropout2d)

    def output_shape(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError(f"Dropout2d expects input shape (N, C, H, W) or (C, H, W), got {tuple(input_shape)}")
        return tuple(input_shape)


__all__ = ["Dropout", "Dropout2d", "Flatten", "Identity"]
