"""Mini-batches over in-memory NumPy arrays, moved to the current backend.

``for xb, yb in DataLoader(x, y, batch_size=64, shuffle=True, seed=0): ...``
"""

from __future__ import annotations

import numbers
from typing import Any, Iterator

import numpy as np

from .backend import asarray
from .random import default_generator


class DataLoader:
    """Iterates over ``x`` (and ``y``) in batches along the first axis.

    Args:
        x: NumPy array (N, ...); y: NumPy array (N, ...) or None.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: a new random order every epoch (each ``iter()``).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        seed: seeds the loader's own generator, so the sequence of epochs is reproducible; None
            draws from ``gpuconv.random.default_generator()`` (set by ``gpuconv.manual_seed``).
    Yields:
        ``xb`` or ``(xb, yb)``: copies of the batch as arrays of the current backend (taken when the
        batch is produced), so changing them never changes the dataset.
    """

    def __init__(self, x: Any, y: Any = None, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None):
        self.x = self._host_array(x, "x")
        self.y = None if y is None else self._host_array(y, "y")
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"x and y must have the same number of samples, got {len(self.x)} and {len(self.y)}")
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    @staticmethod
    def _host_array(a: Any, name: str) -> np.ndarray:
        if not isinstance(a, np.ndarray):
            if hasattr(a, "__cuda_array_interface__"):
                raise TypeError(f"{name} must be a NumPy array (the loader moves each batch to the backend); "
                                "got a device array")
            a = np.asarray(a)
        if a.ndim < 1:
            raise ValueError(f"{name} must have a sample dimension, got a 0-D array")
        return a

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.x)
        if self.shuffle:
            rng = self._rng if self._rng is not None else default_generator()
            order = rng.permutation(n)
        else:
            order = np.arange(n)
        for batch in range(len(self)):
            index = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            xb = asarray(self.x[index])
            yield xb if self.y is None else (xb, asarray(self.y[index]))
