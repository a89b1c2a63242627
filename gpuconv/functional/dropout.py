"""Dropout with inverted scaling: kept elements are multiplied by 1/(1-p) so eval needs no rescale.

The keep mask is drawn on the host from a NumPy generator (``gpuconv.random.default_generator()``
unless one is passed) and moved to the backend, so a seed gives the same mask on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_backend
from ..random import default_generator
from ._args import check_array
from ._common import check_real


def _check_p(p: Any) -> float:
    p = check_real(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p (dropout probability) must be in [0, 1], got {p}")
    return p


def _scale(p: float, dtype) -> Any:
    # NOTE: p == 1 drops everything; PyTorch then returns zeros rather than 0 * inf = NaN.
    return np.dtype(dtype).type(0.0 if p == 1.0 else 1.0 / (1.0 - p))


def dropout(x: Any, p: float = 0.5, training: bool = True, *, generator: np.random.Generator | None = None,
            return_mask: bool = False) -> Any:
    """Zeroes each element with probability ``p`` and scales the others by 1/(1-p) (training only).

    Args:
        x: any shape, float32 or float64.
        p: drop probability in [0, 1]; p = 1 gives zeros.
        training: when False (or p == 0) the input is returned unchanged and nothing is drawn.
        generator: NumPy Generator to draw the mask from (default: gpuconv's default generator).
        return_mask: also return the boolean keep mask (x's shape), for :func:`dropout_backward`.
    Returns:
        y with x's shape, or (y, mask).
    """
    check_array(x, "x")
    p = _check_p(p)
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
    be = get_backend()
    if not training or p == 0.0:
        return (x, be.xp.ones(x.shape, dtype=bool)) if return_mask else x
    rng = generator if generator is not None else default_generator()
    mask = be.asarray(rng.random(x.shape) >= p)
    y = x * (mask.astype(x.dtype) * _scale(p, x.dtype))
    return (y, mask) if return_mask else y


def dropout_backward(dy: Any, mask: Any, p: float) -> Any:
    """dx = dy * mask / (1 - p) (zeros for p = 1). ``mask`` is the keep mask :func:`dropout` returned."""
    check_array(dy, "dy")
    p = _check_p(p)
    get_backend().check_native("mask", mask)
    if tuple(mask.shape) != tuple(dy.shape):
        raise ValueError(f"mask must have dy's shape {tuple(dy.shape)}, got {tuple(mask.shape)}")
    return dy * (mask.astype(dy.dtype) * _scale(p, dy.dtype))


def dropout_transient_bytes(x_shape: tuple[int, ...], dtype: Any, direction: str, backend: str) -> int:
    """Bytes :func:`dropout` (training, ``direction="forward"``, with its mask) or
    :func:`dropout_backward` (``"backward"``) allocates above its results at its peak.

    Both directions multiply by ``mask.astype(dtype) * scale``: one temporary of x's size, which
    NumPy (from 256 KiB on) reuses for the scaling and then for the product itself, so nothing stays
    above the result; below that, and on CuPy, one array of x's size. The forward first draws
    float64 uniforms (numpy and emulated: in the same memory; cupy: host memory, not counted here)
    next to the bool mask being written.
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    elements = int(np.prod(tuple(x_shape), dtype=np.int64))
    item = np.dtype(dtype).itemsize
    elided = backend != "cupy" and elements * item >= 256 * 1024
    scaled = 0 if elided else elements * item
    if direction == "backward":
        return scaled
    uniforms = elements * 8 if backend != "cupy" else 0
    # Above the results y and mask: the uniforms (y not allocated yet), or the scaled mask.
    return max(uniforms - elements * item, scaled)
