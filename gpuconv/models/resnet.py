"""ResNet-18/34/50 with torchvision's structure, parameter names and initialisation."""

from __future__ import annotations

from typing import Any

from .. import nn
from ..nn.resnet_blocks import BasicBlock, Bottleneck, conv1x1


class ResNet(nn.Chain):
    """torchvision's ResNet: conv1 - bn1 - relu - maxpool - layer1..4 - avgpool - flatten - fc.

    Args:
        block: BasicBlock or Bottleneck; layers: blocks per stage.
        num_classes: outputs of ``fc``; in_channels: input channels of ``conv1``.
        cifar_stem: for 32x32 inputs, ``conv1`` is a 3x3 stride-1 convolution and ``maxpool`` an
            Identity (parameter names unchanged; conv1's shape differs from torchvision's).
        zero_init_residual: zero the last BatchNorm weight of each block (torchvision's option).
    """

    _fusable = (("conv1", "bn1"),)

    def __init__(self, block, layers: list[int], num_classes: int = 1000, in_channels: int = 3, *,
                 cifar_stem: bool = False, zero_init_residual: bool = False, dtype: Any = None):
        super().__init__()
        self.inplanes = 64
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self._dtype = dtype
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False, dtype=dtype)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(64, dtype=dtype)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes, dtype=dtype)
        self._flatten = nn.Flatten(1)
        _init_resnet(self, zero_init_residual)

    def __setattr__(self, name, value):
        # The flatten between avgpool and fc is part of the forward, not a child (as in torchvision).
        if name == "_flatten":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride, dtype=self._dtype),
                                       nn.BatchNorm2d(planes * block.expansion, dtype=self._dtype))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, dtype=self._dtype)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dtype=self._dtype))
        return nn.Sequential(*layers)

    def _chain(self):
        return [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2, self.layer3, self.layer4,
                self.avgpool, self._flatten, self.fc]


def _init_resnet(model: ResNet, zero_init_residual: bool) -> None:
    """torchvision's: convs kaiming_normal(fan_out, relu), BatchNorm weight 1 and bias 0, fc PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data[...] = nn.init.kaiming_normal(m.weight.shape, mode="fan_out", nonlinearity="relu",
                                                        dtype=m.weight.dtype)
        if zero_init_residual and isinstance(m, Bottleneck):
            m.bn3.weight.data[...] = 0
        elif zero_init_residual and isinstance(m, BasicBlock):
            m.bn2.weight.data[...] = 0


def _resnet(block, layers, num_classes, in_channels, **kwargs) -> ResNet:
    return ResNet(block, layers, num_classes, in_channels, **kwargs)


def resnet18(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18 (11,689,512 parameters with 1000 classes). kwargs: cifar_stem, zero_init_residual, dtype."""
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, **kwargs)


def resnet34(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34 (21,797,672 parameters with 1000 classes)."""
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


def resnet50(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 (25,557,032 parameters with 1000 classes)."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, **kwargs)
