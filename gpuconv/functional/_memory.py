"""Shared terms of the ops' transient-memory formulas (``*_transient_bytes``)."""

from __future__ import annotations

import numpy as np


def numpy_buffer_bytes(elements: int, itemsize: int) -> int:
    """The buffer NumPy's iterator allocates for one operand that must be cast or gathered (a bool
    mask multiplied into floats, einsum's operands): at most ``np.getbufsize()`` elements."""
    return min(int(elements), int(np.getbufsize())) * int(itemsize)
