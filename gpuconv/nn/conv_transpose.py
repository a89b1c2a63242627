"""ConvTranspose2d."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from ..functional._args import non_negative_pair, positive_pair
from . import init
from .module import Module
from .parameter import Parameter


class ConvTranspose2d(Module):
    """Transposed 2-D convolution over (N, C_in, H, W), PyTorch's ``nn.ConvTranspose2d``: the adjoint
    of the Conv2d with the same arguments (it maps that conv's output shape back to its input shape),
    run through conv2d's algorithms (:func:`gpuconv.functional.conv_transpose2d`).

    Args:
        in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
        bias=True, dilation=1, padding_mode="zeros" (the only mode), as in PyTorch; ``dtype`` of
        the parameters (float32 by default); ``algo``: the conv2d algorithm.
    Shapes:
        weight (C_in, C_out/groups, KH, KW), bias (C_out,); output (N, C_out, OH, OW) with
        OH = (H - 1) * stride - 2 * padding + dilation * (KH - 1) + output_padding + 1.
    Keeps for backward: its input.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", *, dtype: Any = None,
                 algo: str = "auto"):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' (the only mode PyTorch and gpuconv implement for "
                             f"ConvTranspose2d), got {padding_mode!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.stride = positive_pair(stride, "stride")
        self.padding = non_negative_pair(padding, "padding")
        self.output_padding = non_negative_pair(output_padding, "output_padding")
        self.dilation = positive_pair(dilation, "dilation")
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"output_padding {self.output_padding} must be smaller than stride {self.stride}")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.algo = algo
        dtype = dtype or np.float32
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        # PyTorch's default: kaiming_uniform(a=sqrt(5)) and bias on +-1/sqrt(fan_in), where fan_in
        # is the weight's dimension 1 times the kernel area.
        self.weight = Parameter(init.kaiming_uniform(shape, a=math.sqrt(5), dtype=dtype))
        if bias:
            fan_in = init.fan_in_and_fan_out(shape)[0]
            self.bias = Parameter(init.uniform((self.out_channels,), 1.0 / math.sqrt(fan_in), dtype))
        else:
            self.register_parameter("bias", None)

    def _args(self) -> tuple:
        return self.stride, self.padding, self.output_padding, self.groups, self.dilation

    def forward(self, x: Any) -> Any:
        y = F.conv_transpose2d(x, self.weight, self.bias, *self._args(),
                               algo=self.algo)
        return y

    def output_shape(self, input_shape):
        return F.conv_transpose2d_output_shape(input_shape, self.weight.shape, *self._args())

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.algo != "auto":
            s += f", algo={self.algo!r}"
        return s


__all__ = ["ConvTranspose2d"]
