"""Pooling layers: MaxPool2d, AvgPool2d, LPPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, GeM."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..backend import get_backend, to_numpy
from ..functional._args import pair
from .module import Module
from .parameter import Parameter


def pool_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length; with ceil_mode the last window must start inside the input
    or its left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    if span < 0 or out < 1:
        raise ValueError(f"pooling window {kernel} (dilation {dilation}) does not fit input size {size} with "
                         f"padding {padding}")
    return out


def _fits_int32(input_shape) -> bool:
    """Whether every flat index within one (H, W) plane fits int32."""
    return int(input_shape[-1]) * int(input_shape[-2]) < 2**31


def _check_4d(name: str, input_shape) -> tuple[int, int, int, int]:
    if len(input_shape) != 4:
        raise ValueError(f"{name} expects input shape (N, C, H, W), got {tuple(input_shape)}")
    return tuple(input_shape)


class MaxPool2d(Module):
    """Max over sliding windows, PyTorch's ``nn.MaxPool2d`` (stride defaults to kernel_size).

    Keeps for backward: its input and the argmax indices as int32 (each index is a position in one
    H*W plane; the kernels write them as int32 directly), N*C*H*W*itemsize + 4*N*C*OH*OW bytes (8 per
    index for planes of 2**31 elements or more). ``return_indices=True`` still returns PyTorch's int64
    indices (and keeps an int32 copy). In eval mode or under ``no_grad`` no index is computed.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def _args(self) -> tuple:
        return self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode

    def forward(self, x: Any) -> Any:
        return F.max_pool2d(x, *self._args(), return_indices=self.return_indices)

    def output_shape(self, input_shape):
        n, c, h, w = _check_4d("MaxPool2d", input_shape)
        k, s, p, d = (pair(v, name) for v, name in zip(self._args()[:4], ("kernel_size", "stride", "padding",
                                                                            "dilation")))
        return (n, c, pool_out_size(h, k[0], s[0], p[0], d[0], self.ceil_mode),
                pool_out_size(w, k[1], s[1], p[1], d[1], self.ceil_mode))

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over sliding windows, PyTorch's ``nn.AvgPool2d``. Keeps for backward: only the input
    shape (0 bytes of arrays)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def _args(self) -> tuple:
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                self.divisor_override)

    def forward(self, x: Any) -> Any:
        y = F.avg_pool2d(x, *self._args())
        return y

    def output_shape(self, input_shape):
        n, c, h, w = _check_4d("AvgPool2d", input_shape)
        k, s, p = (pair(v, name) for v, name in zip(self._args()[:3], ("kernel_size", "stride", "padding")))
        return (n, c, pool_out_size(h, k[0], s[0], p[0], 1, self.ceil_mode),
                pool_out_size(w, k[1], s[1], p[1], 1, self.ceil_mode))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class LPPool2d(Module):
    """Power-average pooling (sum over the window of x^p)^(1/p), PyTorch's ``nn.LPPool2d`` (see
    :func:`gpuconv.functional.lp_pool2d`; stride defaults to kernel_size, no padding).

    Keeps for backward: its input, N*C*H*W*itemsize bytes.
    """

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def forward(self, x: Any) -> Any:
        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def output_shape(self, input_shape):
        n, c, h, w = _check_4d("LPPool2d", input_shape)
        k = pair(self.kernel_size, "kernel_size")
        s = pair(self.stride if self.stride is not None else self.kernel_size, "stride")
        return (n, c, pool_out_size(h, k[0], s[0], 0, 1, self.ceil_mode),
                pool_out_size(w, k[1], s[1], 0, 1, self.ceil_mode))

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


def _adaptive_size(output_size, input_shape) -> tuple[int, int]:
    """(OH, OW) from an int or a pair whose None entries keep the input's size."""
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"output_size must be an int or a pair, got {output_size!r}")
    return tuple(int(input_shape[2 + i]) if v is None else int(v) for i, v in enumerate(size))


class AdaptiveAvgPool2d(Module):
    """Mean over adaptive windows giving ``output_size``, PyTorch's ``nn.AdaptiveAvgPool2d``.

    Keeps for backward: only the input shape (0 bytes of arrays).
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        size = _adaptive_size(self.output_size, x.shape)
        y = F.adaptive_avg_pool2d(x, size)
        return y

    def output_shape(self, input_shape):
        n, c, _, _ = _check_4d("AdaptiveAvgPool2d", input_shape)
        return (n, c) + _adaptive_size(self.output_size, input_shape)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max over adaptive windows giving ``output_size``, PyTorch's ``nn.AdaptiveMaxPool2d``.

    Keeps for backward: its input and the int64 argmax indices, N*C*H*W*itemsize + 8*N*C*OH*OW
    bytes.
    """

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, x: Any) -> Any:
        size = _adaptive_size(self.output_size, x.shape)
        y, indices = F.adaptive_max_pool2d(x, size, return_indices=True)
        return (y, indices) if self.return_indices else y

    def output_shape(self, input_shape):
        n, c, _, _ = _check_4d("AdaptiveMaxPool2d", input_shape)
        return (n, c) + _adaptive_size(self.output_size, input_shape)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GeM(Module):
    """Generalized-mean pooling (avg(clamp(x, eps)^p))^(1/p) with a learnable exponent ``p``.

    Args:
        p: initial exponent (the parameter ``p``, shape (1,)).
        eps: lower clamp of the input.
        kernel_size: None pools globally to (N, C, 1, 1); else windows of kernel_size.
        stride: defaults to kernel_size.
    Keeps for backward: its input, N*C*H*W*itemsize bytes.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, kernel_size=None, stride=None, *, dtype: Any = None):
        super().__init__()
        self.p = Parameter(get_backend().xp.full((1,), float(p), dtype=np.dtype(dtype or np.float32)))
        self.eps = float(eps)
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: Any) -> Any:
        y = F.gem(x, self.p, self.eps, self.kernel_size, self.stride)
        return y

    def output_shape(self, input_shape):
        n, c, h, w = _check_4d("GeM", input_shape)
        if self.kernel_size is None:
            return (n, c, 1, 1)
        k = pair(self.kernel_size, "kernel_size")
        s = pair(self.stride if self.stride is not None else self.kernel_size, "stride")
        return (n, c, pool_out_size(h, k[0], s[0], 0, 1, False), pool_out_size(w, k[1], s[1], 0, 1, False))

    def extra_repr(self) -> str:
        p = float(to_numpy(self.p.data).reshape(-1)[0])
        s = f"p={p:.4f}, eps={self.eps}"
        if self.kernel_size is not None:
            s += f", kernel_size={self.kernel_size}, stride={self.stride if self.stride is not None else self.kernel_size}"
        return s


__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "GeM", "LPPool2d", "MaxPool2d"]
