"""ResNet's residual blocks, with torchvision's structure and parameter names."""

from __future__ import annotations

from typing import Any


from .. import functional as F
from .container import chain_output_shape
from .conv import Conv2d
from .module import Module
from .norm import BatchNorm2d
from .activation import ReLU


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1,
            dtype: Any = None) -> Conv2d:
    return Conv2d(in_planes, out_planes, 3, stride=stride, padding=dilation, groups=groups, bias=False,
                  dilation=dilation, dtype=dtype)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, dtype: Any = None) -> Conv2d:
    return Conv2d(in_planes, out_planes, 1, stride=stride, bias=False, dtype=dtype)


class _Residual(Module):
    """relu(main(x) + shortcut(x)), where main is conv/bn pairs with ReLUs between them and the
    shortcut is ``downsample`` or the identity. ``relu`` is used after every pair but the last and
    after the sum (as torchvision does), so the block keeps those ReLU outputs itself."""

    _fusable = ()

    def _pairs(self) -> list[tuple[Module, Module]]:
        return [(getattr(self, conv), getattr(self, bn)) for conv, bn in self._fusable]

    def _main_chain(self) -> list[Module]:
        modules: list[Module] = []
        for conv, bn in self._pairs():
            modules += [conv, bn, self.relu]
        return modules[:-1]

    def forward(self, x: Any) -> Any:
        out = x
        pairs = self._pairs()
        for index, (conv, bn) in enumerate(pairs):
            out = bn(conv(out))
            if index < len(pairs) - 1:
                out = F.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        # Out of place (one kernel each, as before autograd); the ``relu`` child is kept for
        # torchvision's structure and names.
        return F.relu(out + identity)

    def output_shape(self, input_shape):
        return chain_output_shape(self._main_chain(), input_shape)


class BasicBlock(_Residual):
    """torchvision's BasicBlock: conv3x3(stride) - bn - relu - conv3x3 - bn, plus the shortcut, relu.

    Children: conv1, bn1, relu, conv2, bn2, downsample (a Sequential(conv1x1, BatchNorm2d) or None).
    """

    expansion = 1
    _fusable = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None, *, dtype: Any = None):
        super().__init__()
        norm_layer = norm_layer or BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("dilation > 1 is not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride, dtype=dtype)
        self.bn1 = norm_layer(planes, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dtype=dtype)
        self.bn2 = norm_layer(planes, dtype=dtype)
        self.add_module("downsample", downsample)
        self.stride = stride


class Bottleneck(_Residual):
    """torchvision's Bottleneck (ResNet v1.5: the stride is on the 3x3 conv): conv1x1 - bn - relu -
    conv3x3(stride) - bn - relu - conv1x1 (x4 channels) - bn, plus the shortcut, relu.

    Children: conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample.
    """

    expansion = 4
    _fusable = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None, *, dtype: Any = None):
        super().__init__()
        norm_layer = norm_layer or BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width, dtype=dtype)
        self.bn1 = norm_layer(width, dtype=dtype)
        self.conv2 = conv3x3(width, width, stride, groups, dilation, dtype=dtype)
        self.bn2 = norm_layer(width, dtype=dtype)
        self.conv3 = conv1x1(width, planes * self.expansion, dtype=dtype)
        self.bn3 = norm_layer(planes * self.expansion, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.add_module("downsample", downsample)
        self.stride = stride


__all__ = ["BasicBlock", "Bottleneck"]
