"""Channel dropout (PyTorch's ``dropout2d``): whole feature maps are zeroed, the others scaled by 1/(1-p).

As :mod:`gpuconv.functional.dropout`, the keep mask is drawn on the host from a NumPy generator,
so a seed gives the same mask on every backend. The mask has one entry per (sample, channel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_backend
from ..random import default_generator
from ._args import check_array
from ._memory import check_request, nbytes
from .dropout import _check_p, _scale
from ._dispatch import recorded


def _mask_shape(x: Any) -> tuple[int, ...]:
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be (N, C, H, W) or (C, H, W) for dropout2d, got shape {tuple(x.shape)}")
    return tuple(x.shape[:-2]) + (1, 1)


def dropout2d(x: Any, p: float = 0.5, training: bool = True, *, generator: np.random.Generator | None = None,
              return_mask: bool = False) -> Any:
    """Zeroes each channel (a whole H x W map) with probability ``p``, scales the rest by 1/(1-p).

    Args:
        x: (N, C, H, W) or (C, H, W).
        p, training, generator: as :func:`gpuconv.functional.dropout`.
        return_mask: also return the boolean keep mask, (N, C, 1, 1) or (C, 1, 1).
    Returns:
        y with x's shape, or (y, mask).
    """
    check_array(x, "x")
    shape = _mask_shape(x)
    p = _check_p(p)
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
    be = get_backend()
    if training and p != 0.0:
        check_request("dropout2d", nbytes(x.shape, x.dtype), "the result")
    if not training or p == 0.0:
        return (x, be.xp.ones(shape, dtype=bool)) if return_mask else x
    rng = generator if generator is not None else default_generator()
    mask = be.asarray(rng.random(shape) >= p)
    y = x * (mask.astype(x.dtype) * _scale(p, x.dtype))
    return (y, mask) if return_mask else y


def dropout2d_backward(dy: Any, mask: Any, p: float) -> Any:
    """dx = dy * mask / (1 - p), the mask broadcast over each channel's map."""
    check_array(dy, "dy")
    p = _check_p(p)
    get_backend().check_native("mask", mask)
    if tuple(mask.shape) != _mask_shape(dy):
        raise ValueError(f"mask must have shape {_mask_shape(dy)} for dy of shape {tuple(dy.shape)}, "
                         f"got {tuple(mask.shape)}")
    check_request("dropout2d_backward", nbytes(dy.shape, dy.dtype), "the result")
    return dy * (mask.astype(dy.dtype) * _scale(p, dy.dtype))


__all__ = ["dropout2d", "dropout2d_backward"]
recorded("dropout2d")
