"""Dropout with inverted scaling: kept elements are multiplied by 1/(1-p) so eval needs no rescale.

Where the keep mask comes from:
- a NumPy generator passed as ``generator``: drawn on the host, ``generator.random(x.shape) >= p``,
  and moved to the backend (the same mask on every backend);
- otherwise, on the numpy backend: the same draw from ``gpuconv.random.default_generator()``;
- otherwise, on the kernel backends (cupy, emulated): float32 uniforms drawn by the backend's own
  generator (CuPy's, on the device: no host round trip), which is seeded from gpuconv's default
  generator, so ``gpuconv.manual_seed`` makes it reproducible (masks differ from the numpy
  backend's for the same seed).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..backend import get_backend
from ..backend.base import needs_capability
from ..random import default_generator
from ._args import check_array
from ._common import check_real
from ._memory import capabilities, check_request, nbytes
from ._dispatch import recorded


class DropoutPrimitives(Protocol):
    """Dropout's primitive of the backend contract (gpuconv/backend/base.py)."""

    def dropout_apply(self, x: Any, mask: Any, scale: float) -> Any:
        """x * mask * scale for a bool ``mask`` of x's shape: a new array."""


@needs_capability("device_dropout")
class DeviceDropoutPrimitives(Protocol):
    """Dropout with the mask drawn on the device (backends with ``capabilities.device_dropout``)."""

    def dropout_device(self, x: Any, p: float, scale: float, seed_source: Any) -> tuple[Any, Any]:
        """(y, bool mask): each element kept with probability 1 - p and scaled, uniforms drawn on the
        device from a seed taken from the generator ``seed_source``."""


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
    if training and p != 0.0:
        check_request("dropout", nbytes(x.shape, x.dtype) + nbytes(x.shape, np.bool_), "the result and its mask")
    if not training or p == 0.0:
        return (x, be.xp.ones(x.shape, dtype=bool)) if return_mask else x
    x = be.xp.ascontiguousarray(x)
    if generator is None and be.capabilities.device_dropout:
        y, mask = be.dropout_device(x, p, _scale(p, x.dtype), default_generator())
    else:
        rng = generator if generator is not None else default_generator()
        mask = be.asarray(rng.random(x.shape) >= p)
        y = be.dropout_apply(x, mask, _scale(p, x.dtype))
    return (y, mask) if return_mask else y


def dropout_backward(dy: Any, mask: Any, p: float) -> Any:
    """dx = dy * mask / (1 - p) (zeros for p = 1). ``mask`` is the keep mask :func:`dropout` returned."""
    check_array(dy, "dy")
    p = _check_p(p)
    get_backend().check_native("mask", mask)
    if tuple(mask.shape) != tuple(dy.shape):
        raise ValueError(f"mask must have dy's shape {tuple(dy.shape)}, got {tuple(mask.shape)}")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be the bool keep mask dropout returned, got dtype {mask.dtype}")
    check_request("dropout_backward", nbytes(dy.shape, dy.dtype), "the result")
    xp = get_backend().xp
    return get_backend().dropout_apply(xp.ascontiguousarray(dy), xp.ascontiguousarray(mask), _scale(p, dy.dtype))


def dropout_transient_bytes(x_shape: tuple[int, ...], dtype: Any, direction: str, backend: Any) -> int:
    """Bytes :func:`dropout` (training, ``direction="forward"``, with its mask, drawn from gpuconv's
    default generator as ``nn.Dropout`` does) or :func:`dropout_backward` (``"backward"``) allocates
    above its results at its peak.

    Kernel backends (cupy, emulated): the forward draws float32 uniforms (4 bytes per element) next to
    y and the bool mask, freed on return; the backward is one kernel writing only dx.
    numpy: both directions multiply by ``mask.astype(dtype) * scale``: one temporary of x's size,
    which NumPy (from 256 KiB on) reuses for the scaling and then for the product itself, so nothing
    stays above the result; below that, one array of x's size. The forward first draws float64
    uniforms next to the bool mask being written.
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    elements = int(np.prod(tuple(x_shape), dtype=np.int64))
    if capabilities(backend).device_dropout:
        return elements * 4 if direction == "forward" else 0
    item = np.dtype(dtype).itemsize
    scaled = 0 if elements * item >= 256 * 1024 else elements * item
    if direction == "backward":
        return scaled
    # Above the results y and mask: the uniforms (y not allocated yet), or the scaled mask.
    return max(elements * 8 - elements * item, scaled)


__all__ = ["dropout", "dropout_backward"]
recorded("dropout")
