"""Linear."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from . import init
from .module import Module, check_input_size
from .parameter import Parameter


class Linear(Module):
    """y = x @ weight.T + bias over the last dimension, PyTorch's ``nn.Linear``.

    Shapes: x (..., in_features) -> y (..., out_features); weight (out_features, in_features),
    bias (out_features,). Keeps for backward: its input, prod(x.shape)*itemsize bytes.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: Any = None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        weight, bias_value = init.default_weight_and_bias((out_features, in_features), bias, dtype or np.float32)
        self.weight = Parameter(weight)
        self.register_parameter("bias", Parameter(bias_value) if bias else None)

    def forward(self, x: Any) -> Any:
        check_input_size(x, None, -1, self.in_features, f"(..., {self.in_features})", "in_features")
        y = F.linear(x, self.weight, self.bias)
        return y

    def output_shape(self, input_shape):
        if not input_shape or input_shape[-1] != self.in_features:
            raise ValueError(f"Linear expects input shape (..., {self.in_features}), got {tuple(input_shape)}")
        return tuple(input_shape[:-1]) + (self.out_features,)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


__all__ = ["Linear"]
