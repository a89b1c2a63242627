"""Conv2d."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import functional as F
from ..functional._args import pair
from . import init
from .module import Module, check_input_size
from .parameter import Parameter


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Conv2d(Module):
    """2-D convolution over (N, C_in, H, W), PyTorch's ``nn.Conv2d``.

    Args:
        in_channels, out_channels, kernel_size, stride=1, padding=0 (int, pair, ``"same"`` or
        ``"valid"``), dilation=1, groups=1, bias=True, padding_mode=``"zeros"``, ``"reflect"``,
        ``"replicate"`` or ``"circular"`` (the last three pad with
        :func:`gpuconv.functional.pad` before an unpadded convolution), as in PyTorch; ``dtype`` of the parameters (float32 by default); ``algo`` picks the algorithm of
        :func:`gpuconv.functional.conv2d`: a name (``"auto"``, ``"im2col"``, ``"direct"``, ``"gemm"``,
        ``"implicit_gemm"``) for every direction, or a mapping with
        ``"forward"``/``"backward_data"``/``"backward_weight"``.
    Shapes:
        weight (C_out, C_in/groups, KH, KW), bias (C_out,); output (N, C_out, OH, OW).
    Keeps for backward: its input, N*C_in*H*W*itemsize bytes (shared with the layer before when
    that keeps its output). Transient: the im2col columns and GEMM buffers of one batch chunk
    (``gpuconv.memory`` models them per direction and backend).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *, dtype: Any = None,
                 algo: str | Mapping[str, str] = "auto"):
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(repr(m) for m in PADDING_MODES)}, "
                             f"got {padding_mode!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if padding == "same" and self.stride != (1, 1):
            raise ValueError(f"padding='same' requires stride 1 (as in PyTorch), got stride={self.stride}")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.algo = algo
        weight, bias_value = init.default_weight_and_bias(
            (out_channels, in_channels // groups) + self.kernel_size, bias, dtype or np.float32)
        self.weight = Parameter(weight)
        self.register_parameter("bias", Parameter(bias_value) if bias else None)

    def _args(self) -> tuple:
        return self.stride, self.padding, self.dilation, self.groups

    def _conv_args(self) -> tuple:
        """conv2d's arguments after _pad: its padding is 0 where _pad did it."""
        return self._args() if self.padding_mode == "zeros" else (self.stride, 0, self.dilation, self.groups)

    def _pad(self, x: Any) -> Any:
        """x padded by padding_mode (PyTorch pads first, then convolves without padding)."""
        return x if self.padding_mode == "zeros" else F.pad(x, self._pad_amounts(), mode=self.padding_mode)

    def _pad_amounts(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom), F.pad's order; "same" splits as conv2d does (the extra row
        or column after), independently of the input's size."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            (top, bottom), (left, right) = ((t // 2, t - t // 2) for t in totals)
            return (left, right, top, bottom)
        (ph, pw) = self.padding
        return (pw, pw, ph, ph)

    def forward(self, x: Any) -> Any:
        check_input_size(x, 4, 1, self.in_channels, f"(N, {self.in_channels}, H, W)", "in_channels")
        x = self._pad(x)
        return F.conv2d(x, self.weight, self.bias, *self._conv_args(), algo=self.algo)

    def output_shape(self, input_shape):
        g = F.conv_geometry(input_shape, self.weight.shape, *self._args())
        return (g.n, g.c_out) + tuple(g.out_size)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        if self.algo != "auto":
            s += f", algo={self.algo!r}"
        return s


__all__ = ["Conv2d"]
