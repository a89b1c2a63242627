"""gpuconv's random number generator: parameter initialisation, dropout, data shuffling.

``gpuconv.manual_seed(seed)`` makes every draw that does not pass its own generator reproducible.
Draws are made on the host with NumPy and moved to the current backend, so a seed gives the same
numbers on every backend.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseeds the default generator and returns it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The generator used when an op is not given one."""
    return _generator
