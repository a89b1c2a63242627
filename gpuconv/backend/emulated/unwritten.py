"""Which elements of the emulated backend's uninitialized integer arrays a kernel has written.

The emulated backend's ``empty()`` fills integer arrays with -1 bytes (0xFF), a common legal value,
so the value alone cannot say "never written". Each such array is tracked here (by address, for as
long as it lives) with a shadow of one byte per element that the sanitizer build sets when a
kernel writes the element; initcheck reports a read of an element whose shadow is clear and that
still holds the poison (a write from NumPy removes the poison).
"""

from __future__ import annotations

import ctypes
import mmap
import threading
import weakref
from dataclasses import dataclass

import numpy as np


@dataclass
class _Tracked:
    end: int
    itemsize: int
    # Made at the first sanitizer-mode launch that uses the array. An anonymous mapping (zeroed, and
    # outside the Python allocators) rather than a NumPy array: tracemalloc, which the memory
    # estimator's checks measure with, does not count a byte per element of each integer array.
    shadow: mmap.mmap | None = None
    shadow_address: int = 0


_tracked: dict[int, _Tracked] = {}
_lock = threading.Lock()


def track(array: np.ndarray) -> None:
    """Starts tracking a freshly allocated, poisoned integer array (no-op for an empty one)."""
    if array.size == 0:
        return
    start = array.ctypes.data
    with _lock:
        _tracked[start] = _Tracked(start + array.nbytes, array.itemsize)
    weakref.finalize(array, _forget, start)


def _forget(start: int) -> None:
    with _lock:
        _tracked.pop(start, None)


def shadow_address(array: np.ndarray) -> int | None:
    """Address of the shadow byte of ``array``'s first element when it lies in a tracked array
    (a view of one included), else None."""
    p, itemsize = array.ctypes.data, array.itemsize
    with _lock:
        for start, tracked in _tracked.items():
            if start <= p < tracked.end and itemsize == tracked.itemsize and (p - start) % itemsize == 0:
                if tracked.shadow is None:
                    tracked.shadow = mmap.mmap(-1, (tracked.end - start) // itemsize)
                    tracked.shadow_address = ctypes.addressof(ctypes.c_char.from_buffer(tracked.shadow))
                return tracked.shadow_address + (p - start) // itemsize
    return None
