"""Shared terms of the ops' transient-memory formulas (``*_transient_bytes``), the up-front size
check every large allocator runs before allocating (:func:`check_request`), and the translation of
CuPy's out-of-memory error for the public ops (:func:`translate_out_of_memory`)."""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Callable

import numpy as np

from ..backend import capabilities_of, get_backend
from ..backend.base import Backend, Capabilities
from ..backend.memory_hooks import (OutOfMemoryError, device_free_bytes, host_limit, is_out_of_memory,
                                    requested_bytes)

# On cupy a request below this size is not checked up front: asking the driver for its free memory
# costs more than such an allocation, and if one fails, CuPy fails at once and
# translate_out_of_memory names the op. Host requests are always checked (a product of ints).
_DEVICE_CHECK_FROM = 64 * 2**20


def capabilities(backend: "str | Backend") -> Capabilities:
    """The flags of ``backend``: a backend object (the current one, or the memory estimator's
    stand-in, which carries its target's flags) or a backend name (the estimator's ``backend=``)."""
    return backend.capabilities if isinstance(backend, Backend) else capabilities_of(backend)


def numpy_buffer_bytes(elements: int, itemsize: int) -> int:
    """The buffer NumPy's iterator allocates for one operand that must be cast or gathered (a bool
    mask multiplied into floats, einsum's operands): at most ``np.getbufsize()`` elements."""
    return min(int(elements), int(np.getbufsize())) * int(itemsize)


def nbytes(shape: tuple[int, ...], dtype: Any) -> int:
    """Bytes of a C-contiguous array of ``shape`` and ``dtype`` (Python ints: no overflow)."""
    return math.prod(int(v) for v in shape) * np.dtype(dtype).itemsize


@functools.lru_cache(maxsize=1)
def physical_memory_bytes() -> int | None:
    """The machine's physical memory (None where ``os.sysconf`` cannot tell)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _budget() -> tuple[int | None, str]:
    """The most one request may take on the current backend, and what that figure is."""
    if get_backend().capabilities.gpu:
        return device_free_bytes(), "the device's free memory plus the free blocks of CuPy's memory pool"
    limit = host_limit()
    if limit is not None:
        return limit, "the host limit (gpuconv.memory.set_host_limit)"
    return physical_memory_bytes(), "the machine's physical memory"


def _human(n: int) -> str:
    """``n`` bytes in the largest binary unit it reaches, for the messages (the exact count goes beside it)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def check_request(op: str, request: int, what: str) -> None:
    """Raises :class:`gpuconv.OutOfMemoryError` naming ``op`` before anything is allocated when
    ``request`` bytes (``what``: the arrays it counts) exceed what the backend can give: on cupy the
    device's free memory plus the pool's free blocks; on numpy/emulated the host limit when one is
    set, else the machine's physical memory. A request that fits costs one comparison (on cupy,
    from 64 MiB, one driver query). The memory estimator's shape-only backend checks nothing."""
    be = get_backend()
    if not be.checks_requests or (be.capabilities.gpu and request < _DEVICE_CHECK_FROM):
        return
    budget, source = _budget()
    if budget is None or request <= budget:
        return
    raise OutOfMemoryError(f"{op}: needs {request:,} bytes ({_human(request)}) for {what}, more than {source}: "
                           f"{budget:,} bytes ({_human(budget)}). Nothing was allocated; use smaller inputs "
                           "(a smaller batch).", op=op, requested=request)


def translate_out_of_memory(op: Callable[..., Any]) -> Callable[..., Any]:
    """``op`` with CuPy's out-of-memory error, raised anywhere inside it, turned into
    :class:`gpuconv.OutOfMemoryError` naming the op and the bytes CuPy asked for (applied once, to
    the public ops where ``gpuconv.functional`` exports them)."""

    @functools.wraps(op)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return op(*args, **kwargs)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            requested = requested_bytes(exc)
            size = f"{requested:,} bytes" if requested is not None else "memory"
            raise OutOfMemoryError(f"out of device memory in {op.__name__}: it requested {size} ({exc}). "
                                   "Use smaller inputs; for a model, gpuconv.memory.estimate shows where the memory "
                                   "goes and gpuconv.memory.suggest_batch_size gives a batch that fits.",
                                   op=op.__name__, requested=requested) from exc

    return wrapper
