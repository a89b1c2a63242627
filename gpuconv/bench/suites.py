"""Convolution layers to benchmark: the named suites and the ``--shape`` syntax."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from gpuconv.functional._memory import physical_memory_bytes

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ConvShape:
    """One convolution: input (n, c, h, w), weight (k, c // groups, r, s), and its arguments."""

    name: str
    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def out_size(self) -> tuple[int, int]:
        def size(extent: int, kernel: int) -> int:
            return (extent + 2 * self.padding - self.dilation * (kernel - 1) - 1) // self.stride + 1
        return size(self.h, self.r), size(self.w, self.s)

    @property
    def forward_flops(self) -> float:
        """Multiply-adds x 2 of the forward (each backward direction does as many)."""
        oh, ow = self.out_size
        return 2.0 * self.n * self.k * oh * ow * (self.c // self.groups) * self.r * self.s

    @property
    def spec(self) -> str:
        """The ``--shape`` string that gives this convolution back."""
        return ",".join(str(v) for v in (self.n, self.c, self.h, self.w, self.k, self.r, self.s, self.stride,
                                         self.padding, self.dilation, self.groups))

    def with_batch(self, n: int, shrink: int = 1) -> ConvShape:
        """This layer at batch ``n``, its planes divided by ``shrink`` (never below the kernel's extent)."""
        h, w = max(self.r, self.h // shrink), max(self.s, self.w // shrink)
        return ConvShape(self.name, n, self.c, h, w, self.k, self.r, self.s, self.stride, self.padding, self.dilation,
                         self.groups)


def _layer(name: str, c: int, k: int, size: int, kernel: int, stride: int, padding: int) -> ConvShape:
    return ConvShape(name, 1, c, size, size, k, kernel, kernel, stride, padding)


# The distinct convolutions of each network at 224x224 input (batch set by --batch).
SUITES: dict[str, list[ConvShape]] = {
    "resnet18": [
        _layer("resnet18.conv1", 3, 64, 224, 7, 2, 3),
        _layer("resnet18.layer1.conv", 64, 64, 56, 3, 1, 1),
        _layer("resnet18.layer2.0.conv1", 64, 128, 56, 3, 2, 1),
        _layer("resnet18.layer2.0.downsample", 64, 128, 56, 1, 2, 0),
        _layer("resnet18.layer2.conv", 128, 128, 28, 3, 1, 1),
        _layer("resnet18.layer3.0.conv1", 128, 256, 28, 3, 2, 1),
        _layer("resnet18.layer3.conv", 256, 256, 14, 3, 1, 1),
        _layer("resnet18.layer4.0.conv1", 256, 512, 14, 3, 2, 1),
        _layer("resnet18.layer4.conv", 512, 512, 7, 3, 1, 1),
    ],
    "resnet50": [
        _layer("resnet50.conv1", 3, 64, 224, 7, 2, 3),
        _layer("resnet50.layer1.0.conv1", 64, 64, 56, 1, 1, 0),
        _layer("resnet50.layer1.conv2", 64, 64, 56, 3, 1, 1),
        _layer("resnet50.layer1.conv3", 64, 256, 56, 1, 1, 0),
        _layer("resnet50.layer1.conv1", 256, 64, 56, 1, 1, 0),
        _layer("resnet50.layer2.0.conv2", 128, 128, 56, 3, 2, 1),
        _layer("resnet50.layer2.0.downsample", 256, 512, 56, 1, 2, 0),
        _layer("resnet50.layer2.conv2", 128, 128, 28, 3, 1, 1),
        _layer("resnet50.layer2.conv3", 128, 512, 28, 1, 1, 0),
        _layer("resnet50.layer3.0.conv2", 256, 256, 28, 3, 2, 1),
        _layer("resnet50.layer3.conv2", 256, 256, 14, 3, 1, 1),
        _layer("resnet50.layer3.conv3", 256, 1024, 14, 1, 1, 0),
        _layer("resnet50.layer4.0.conv2", 512, 512, 14, 3, 2, 1),
        _layer("resnet50.layer4.conv2", 512, 512, 7, 3, 1, 1),
        _layer("resnet50.layer4.conv3", 512, 2048, 7, 1, 1, 0),
    ],
    "vgg16": [
        _layer("vgg16.conv1_1", 3, 64, 224, 3, 1, 1),
        _layer("vgg16.conv1_2", 64, 64, 224, 3, 1, 1),
        _layer("vgg16.conv2_2", 128, 128, 112, 3, 1, 1),
        _layer("vgg16.conv3_3", 256, 256, 56, 3, 1, 1),
        _layer("vgg16.conv4_3", 512, 512, 28, 3, 1, 1),
        _layer("vgg16.conv5_3", 512, 512, 14, 3, 1, 1),
    ],
}
SUITE_CHOICES = tuple(SUITES) + ("all",)


def suite_layers(name: str, batch: int, shrink: int = 1) -> list[ConvShape]:
    """The layers of suite ``name`` (or of every suite for ``"all"``) at batch size ``batch``, their
    planes divided by ``shrink``."""
    names = list(SUITES) if name == "all" else [name]
    return [layer.with_batch(batch, shrink) for suite in names for layer in SUITES[suite]]


def shape_bytes(shape: ConvShape) -> int:
    """Bytes the conv subcommand holds at once for ``shape``: x, weight, bias and dy, each drawn in
    float64 and then cast (up to twice over), and an output of each direction (Python ints)."""
    x = shape.n * shape.c * shape.h * shape.w
    w = shape.k * (shape.c // shape.groups) * shape.r * shape.s
    y = shape.n * shape.k * shape.out_size[0] * shape.out_size[1]
    return 8 * 2 * (x + w + shape.k + y) + 8 * (x + w + y)


def parse_shape(text: str) -> ConvShape:
    """``N,C,H,W,K,R,S[,stride,pad,dilation,groups]`` -> ConvShape (argparse type: bad text exits 2)."""
    parts = text.split(",")
    if not 7 <= len(parts) <= 11:
        raise argparse.ArgumentTypeError(
            f"--shape takes 7 to 11 comma-separated ints N,C,H,W,K,R,S[,stride,pad,dilation,groups], "
            f"got {len(parts)} in {text!r}")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape takes comma-separated ints, got {text!r}") from None
    names = ("N", "C", "H", "W", "K", "R", "S", "stride", "pad", "dilation", "groups")
    for name, value in zip(names, values):
        low = 0 if name == "pad" else 1
        if value < low:
            raise argparse.ArgumentTypeError(f"--shape: {name} must be >= {low}, got {value} in {text!r}")
        if value > INT32_MAX:  # the kernels take 32-bit sizes
            raise argparse.ArgumentTypeError(f"--shape: {name} must be at most {INT32_MAX}, got {value} in {text!r}")
    shape = ConvShape(text, *values)
    shape = ConvShape(shape.spec, *values)  # named by its full spec: one name per convolution
    groups = shape.groups
    if shape.c % groups or shape.k % groups:
        raise argparse.ArgumentTypeError(f"--shape: groups={groups} must divide C={shape.c} and K={shape.k}")
    if min(shape.out_size) < 1:
        raise argparse.ArgumentTypeError(f"--shape: the output would be empty ({shape.out_size}) for {text!r}")
    needed, available = shape_bytes(shape), physical_memory_bytes()
    if available is not None and needed > available:
        raise argparse.ArgumentTypeError(f"--shape {text}: its arrays need about {needed / 2**30:.1f} GiB, more than "
                                         f"this machine's {available / 2**30:.1f} GiB of memory")
    return shape
