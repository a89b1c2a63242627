"""Image transforms on host (NumPy) arrays, torchvision's names and arguments: ``Compose``,
``RandomCrop``, ``RandomHorizontalFlip``, ``Normalize``.

A transform takes one image (C, H, W) or (H, W) (any leading dimensions: (..., H, W)) and returns
a new array; it never changes its argument. Give them to a DataLoader::

    train = DataLoader((x, y), batch_size=64, shuffle=True, seed=0,
                       transform=transforms.Compose([transforms.RandomCrop(32, padding=4),
                                                     transforms.RandomHorizontalFlip(),
                                                     transforms.Normalize(mean, std)]))

Random transforms draw from the generator of :func:`random_source` when one is set in this thread
(the DataLoader sets one per batch, so a seeded loader is reproducible with any ``num_workers``),
else from ``gpuconv.random.default_generator()`` (``gpuconv.manual_seed``).
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .random import default_generator

_local = threading.local()


@contextlib.contextmanager
def random_source(generator: np.random.Generator) -> Iterator[np.random.Generator]:
    """Makes random transforms in this thread draw from ``generator`` inside the ``with`` block."""
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
    previous = getattr(_local, "generator", None)
    _local.generator = generator
    try:
        yield generator
    finally:
        _local.generator = previous


def _rng() -> np.random.Generator:
    generator = getattr(_local, "generator", None)
    return generator if generator is not None else default_generator()


def _image(img: Any, who: str, min_ndim: int = 2) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        kind = "a device array" if hasattr(img, "__cuda_array_interface__") else type(img).__name__
        raise TypeError(f"{who} expects a NumPy image array (..., H, W) on the host, got {kind}")
    if img.ndim < min_ndim:
        raise ValueError(f"{who} expects an image with at least {min_ndim} dimensions (..., H, W), "
                         f"got shape {img.shape}")
    return img


class Compose:
    """Applies ``transforms`` one after the other."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable, got {type(t).__name__}")
        self.transforms = transforms

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        body = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({body}\n)"


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"size must be a positive int or a pair (height, width) of them, got {size!r}")
    return int(size[0]), int(size[1])


def _padding(padding: Any) -> tuple[int, int, int, int] | None:
    """torchvision's padding forms as (left, top, right, bottom)."""
    if padding is None:
        return None
    values = (padding,) if isinstance(padding, numbers.Integral) else padding
    if (not isinstance(values, (tuple, list)) or len(values) not in (1, 2, 4)
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in values)):
        raise ValueError("padding must be a non-negative int, a pair (left/right, top/bottom) or a 4-tuple "
                         f"(left, top, right, bottom), got {padding!r}")
    values = tuple(int(v) for v in values)
    if len(values) == 1:
        return values * 4
    if len(values) == 2:
        return values * 2
    return values


PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _pad(img: np.ndarray, left: int, top: int, right: int, bottom: int, fill: float, mode: str) -> np.ndarray:
    widths = [(0, 0)] * (img.ndim - 2) + [(top, bottom), (left, right)]
    if mode == "constant":
        return np.pad(img, widths, mode="constant", constant_values=fill)
    return np.pad(img, widths, mode=mode)


class RandomCrop:
    """Crops a random ``size`` window, after optional padding, as torchvision's ``RandomCrop``.

    Args:
        size: (height, width) of the crop, or an int for a square.
        padding: added first: an int (every side), a pair (left/right, top/bottom) or a 4-tuple
            (left, top, right, bottom).
        pad_if_needed: pad (both sides) a dimension smaller than the crop.
        fill: value of constant padding.
        padding_mode: "constant", "edge", "reflect" or "symmetric" (NumPy's ``np.pad`` modes,
            which are torchvision's).
    Shapes:
        (..., H, W) -> (..., height, width); the dtype is kept.
    """

    def __init__(self, size: Any, padding: Any = None, pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: str = "constant"):
        self.size = _size(size)
        self.padding = _padding(padding)
        self.pad_if_needed = bool(pad_if_needed)
        if not isinstance(fill, numbers.Real) or isinstance(fill, bool):
            raise TypeError(f"fill must be a number, got {fill!r}")
        self.fill = fill
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode

    def __call__(self, img: Any) -> np.ndarray:
        img = _image(img, "RandomCrop")
        if self.padding is not None:
            img = _pad(img, *self.padding, self.fill, self.padding_mode)
        th, tw = self.size
        h, w = img.shape[-2:]
        if self.pad_if_needed and h < th:
            img = _pad(img, 0, th - h, 0, th - h, self.fill, self.padding_mode)
        if self.pad_if_needed and w < tw:
            img = _pad(img, tw - w, 0, tw - w, 0, self.fill, self.padding_mode)
        h, w = img.shape[-2:]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the (padded) image "
                             f"{(h, w)}; pass padding= or pad_if_needed=True")
        rng = _rng()
        top = int(rng.integers(0, h - th + 1))
        left = int(rng.integers(0, w - tw + 1))
        return np.array(img[..., top:top + th, left:left + tw], copy=True)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirrors the image left-right (last axis) with probability ``p``. Shapes: (..., H, W) -> same."""

    def __init__(self, p: float = 0.5):
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, img: Any) -> np.ndarray:
        img = _image(img, "RandomHorizontalFlip")
        if _rng().random() < self.p:
            return np.ascontiguousarray(img[..., ::-1])
        return np.array(img, copy=True)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """(img - mean[c]) / std[c] per channel, as torchvision's ``Normalize``.

    Args:
        mean, std: one value per channel (sequences of length C), or a single value for all.
        inplace: write into the argument instead of a new array.
    Shapes:
        (..., C, H, W) float32 or float64 -> same shape and dtype.
    """

    def __init__(self, mean: Any, std: Any, inplace: bool = False):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1 or self.mean.size < 1 or self.std.size < 1:
            raise ValueError(f"mean and std must be numbers or 1-D sequences (one per channel), got {mean!r}, {std!r}")
        if np.any(self.std == 0):
            raise ValueError(f"std must not contain zeros (division), got {std!r}")
        self.inplace = bool(inplace)

    def __call__(self, img: Any) -> np.ndarray:
        img = _image(img, "Normalize", min_ndim=3)
        if img.dtype.kind != "f":
            raise TypeError(f"Normalize expects a float image, got dtype {img.dtype}; convert it first "
                            "(e.g. img.astype(np.float32) / 255)")
        channels = img.shape[-3]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(f"Normalize: {name} has {values.size} values but the image has {channels} channels "
                                 f"(shape {img.shape})")
        mean = self.mean.astype(img.dtype).reshape(-1, 1, 1)
        std = self.std.astype(img.dtype).reshape(-1, 1, 1)
        if self.inplace:
            img -= mean
            img /= std
            return img
        return (img - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
