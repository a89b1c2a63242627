"""Guard pages after the array arguments of a launch in sanitizer mode.

The sanitizer build's hooks see every load and store the compiler instrumented, but not accesses
in uninstrumented code (a libc ``memcpy`` called by a kernel, inline assembly). So in sanitizer
mode each array argument is copied into a fresh mapping placed so that its end lies just before a
``PROT_NONE`` page, and copied back after the launch: an access past the end that the hooks miss
faults, and the crash handler reports it naming the argument (kernels/emu/signals.h). The start
keeps the original address modulo 16, so vector-access alignment (which the launchers check on
the original) is unchanged; that leaves at most 15 bytes between the end and the guard page, which
the hooks cover. Arguments that overlap another one (in-place operations) stay where they are.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
from typing import Iterator, Sequence

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MAP_FAILED = ctypes.c_void_p(-1).value
_PROT_NONE = 0  # not in the mmap module
_ALIGNMENT = 16


def _overlapping(arrays: Sequence[np.ndarray]) -> set[int]:
    """Indexes of the arrays whose memory overlaps another's."""
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes, i) for i, a in enumerate(arrays))
    result, end, last = set(), 0, -1
    for lo, hi, i in spans:
        if lo < end:
            result.update((i, last))
        if hi > end:
            end, last = hi, i
    return result


@contextlib.contextmanager
def guarded(arrays: Sequence[np.ndarray], pinned: Sequence[np.ndarray] = ()) -> Iterator[list[int]]:
    """Yields, per array, the address the kernel should use: a guarded copy for a C-contiguous,
    non-empty array that overlaps no other, else the array's own. Copies back on exit.

    ``pinned``: arrays the kernel reaches at their own addresses (through a table of pointers), so
    they are never copied; an argument overlapping one of them stays in place too, or the kernel
    would see two copies of the same memory."""
    page = mmap.PAGESIZE
    skip = {i for i in _overlapping([*arrays, *pinned]) if i < len(arrays)}
    addresses: list[int] = []
    copies: list[tuple[int, int, np.ndarray, list[int]]] = []  # mapping, its size, the array, [copy address]
    try:
        for i, array in enumerate(arrays):
            if i in skip or array.nbytes == 0 or not array.flags.c_contiguous:
                addresses.append(array.ctypes.data)
                continue
            span = -(-(array.nbytes + _ALIGNMENT) // page) * page
            base = _libc.mmap(None, span + page, mmap.PROT_READ | mmap.PROT_WRITE,
                              mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
            if base in (None, _MAP_FAILED):
                raise MemoryError(f"cannot map {span + page} bytes for the guarded copy of a kernel argument")
            copied: list[int] = []
            copies.append((base, span + page, array, copied))
            if _libc.mprotect(base + span, page, _PROT_NONE) != 0:
                raise OSError(ctypes.get_errno(), "mprotect of a guard page failed")
            start = base + span - array.nbytes
            start -= (start - array.ctypes.data) % _ALIGNMENT  # same address modulo 16 as the original
            ctypes.memmove(start, array.ctypes.data, array.nbytes)
            copied.append(start)
            addresses.append(start)
        yield addresses
    finally:
        for base, size, array, copied in copies:
            if copied:
                ctypes.memmove(array.ctypes.data, copied[0], array.nbytes)
            _libc.munmap(base, size)
