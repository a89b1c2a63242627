"""Element-wise activations: ReLU, LeakyReLU, Sigmoid, Tanh.

``inplace=True`` writes the result into the input Tensor, as in PyTorch: autograd then raises at
backward if the layer before saved that input (use the default out-of-place form there).
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .module import Module


class _Elementwise(Module):
    def output_shape(self, input_shape):
        return tuple(input_shape)


class ReLU(_Elementwise):
    """max(x, 0). Keeps for backward: its output (whose sign pattern is the input's), never its
    input: prod(shape)*itemsize bytes, the same array the next layer keeps as its input, so a
    conv-ReLU-conv chain keeps one array, not two. Backward allocates a bool mask (1 byte/element)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Any) -> Any:
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(_Elementwise):
    """x if x > 0 else negative_slope * x. Keeps for backward: its input, prod(shape)*itemsize bytes."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = inplace

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)). Keeps for backward: its output, prod(shape)*itemsize bytes."""

    def forward(self, x: Any) -> Any:
        y = F.sigmoid(x)
        return y


class Tanh(_Elementwise):
    """tanh(x). Keeps for backward: its output, prod(shape)*itemsize bytes."""

    def forward(self, x: Any) -> Any:
        y = F.tanh(x)
        return y


__all__ = ["LeakyReLU", "ReLU", "Sigmoid", "Tanh"]
