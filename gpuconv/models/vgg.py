"""VGG-11/16 with and without batch normalization, and AlexNet: torchvision's structure and names."""

from __future__ import annotations

from typing import Any

from .. import nn

CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class _Classifier(nn.Chain):
    """features - avgpool - flatten - classifier (the flatten is part of the forward, not a child)."""

    def __setattr__(self, name, value):
        if name == "_flatten":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _chain(self):
        return [self.features, self.avgpool, self._flatten, self.classifier]


class VGG(_Classifier):
    """torchvision's VGG: ``features`` (3x3 convs, optional BatchNorm, ReLU, 2x2 max pools),
    ``avgpool`` AdaptiveAvgPool2d((7, 7)), ``classifier`` (three Linear layers with ReLU and Dropout)."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5, *, dtype: Any = None):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096, dtype=dtype), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096, dtype=dtype), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes, dtype=dtype))
        self._flatten = nn.Flatten(1)
        # torchvision's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data[...] = nn.init.kaiming_normal(m.weight.shape, mode="fan_out", nonlinearity="relu",
                                                            dtype=m.weight.dtype)
                m.bias.data[...] = 0
            elif isinstance(m, nn.Linear):
                m.weight.data[...] = nn.init.normal(m.weight.shape, 0.01, dtype=m.weight.dtype)
                m.bias.data[...] = 0


def make_layers(config: list, batch_norm: bool, in_channels: int = 3, dtype: Any = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1, dtype=dtype))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v, dtype=dtype))
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


def _vgg(config: str, batch_norm: bool, num_classes: int, in_channels: int, **kwargs: Any) -> VGG:
    dtype = kwargs.get("dtype")
    return VGG(make_layers(CONFIGS[config], batch_norm, in_channels, dtype), num_classes, **kwargs)


def vgg11(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A; 132,863,336 parameters with 1000 classes)."""
    return _vgg("A", False, num_classes, in_channels, **kwargs)


def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> VGG:
    """VGG-11 with batch normalization (132,868,840 parameters)."""
    return _vgg("A", True, num_classes, in_channels, **kwargs)


def vgg16(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D; 138,357,544 parameters with 1000 classes)."""
    return _vgg("D", False, num_classes, in_channels, **kwargs)


def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> VGG:
    """VGG-16 with batch normalization (138,365,992 parameters)."""
    return _vgg("D", True, num_classes, in_channels, **kwargs)


class AlexNet(_Classifier):
    """torchvision's AlexNet: five convs with ReLU and max pools, AdaptiveAvgPool2d((6, 6)), and a
    classifier of Dropout / Linear / ReLU (61,100,840 parameters with 1000 classes)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, *, dtype: Any = None):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2, dtype=dtype), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2, dtype=dtype), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1, dtype=dtype), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, dtype=dtype), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, dtype=dtype), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096, dtype=dtype), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096, dtype=dtype), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes, dtype=dtype))
        self._flatten = nn.Flatten(1)


def alexnet(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> AlexNet:
    """AlexNet as in torchvision (expects inputs of at least 63x63; 224x224 in the original)."""
    return AlexNet(num_classes, in_channels, **kwargs)


class LeNet5(_Classifier):
    """LeNet-5 for 32x32 inputs (pad 28x28 MNIST digits by 2) with ReLU and max pooling:
    conv5x5(6) - pool - conv5x5(16) - pool - 120 - 84 - num_classes. ``avgpool`` is an Identity,
    there to share the features/avgpool/classifier layout of the other models."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, *, dtype: Any = None):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, dtype=dtype), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5, dtype=dtype), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.avgpool = nn.Identity()
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120, dtype=dtype), nn.ReLU(inplace=True),
            nn.Linear(120, 84, dtype=dtype), nn.ReLU(inplace=True),
            nn.Linear(84, num_classes, dtype=dtype))
        self._flatten = nn.Flatten(1)


def lenet5(num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> LeNet5:
    """LeNet-5 (61,706 parameters with 10 classes and 1 input channel), for 32x32 inputs."""
    return LeNet5(num_classes, in_channels, **kwargs)
