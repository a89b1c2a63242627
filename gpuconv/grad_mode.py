"""Grad mode: whether ops record the autograd graph (``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode``), per thread, as in PyTorch.

Inside ``no_grad`` no node is recorded and nothing is saved for backward, so inference needs no
activation memory beyond the op being computed. Version counting of in-place ops goes on.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops on tensors that require grad record the graph (True outside ``no_grad``)."""
    return getattr(_state, "enabled", True)


def _set(enabled: bool) -> None:
    _state.enabled = bool(enabled)


class _GradMode:
    """Context manager and decorator that sets the grad mode for a block, then restores it."""

    enabled: bool

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc_info: Any) -> None:
        _state.enabled = self._previous

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._clone():
                return fn(*args, **kwargs)
        return wrapper

    def _clone(self) -> "_GradMode":
        return type(self)()


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """``with gpuconv.no_grad():`` (or ``@gpuconv.no_grad()``): ops record nothing and save nothing."""

    enabled = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Turns recording back on inside a ``no_grad`` block."""

    enabled = True


class set_grad_enabled(_GradMode):  # noqa: N801 - PyTorch's name
    """``set_grad_enabled(mode)``: as a context manager or decorator, grad mode ``mode`` for the block;
    called as a plain function, sets it for this thread from now on (PyTorch's two uses)."""

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled(mode): mode must be a bool, got {mode!r}")
        self.enabled = mode
        self._previous = is_grad_enabled()
        _state.enabled = mode

    def __enter__(self) -> None:
        # The constructor already switched the mode (the plain-call use); remember what to restore.
        _state.enabled = self.enabled

    def _clone(self) -> "_GradMode":
        previous = is_grad_enabled()
        clone = set_grad_enabled(self.enabled)
        _state.enabled = previous
        return clone


class inference_mode(_GradMode):  # noqa: N801 - PyTorch's name
    """``inference_mode(mode=True)``: as ``no_grad`` (gpuconv has no separate inference tensors; the
    results of ops inside it simply carry no graph)."""

    def __init__(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise TypeError(f"inference_mode(mode): mode must be a bool, got {mode!r}")
        self.enabled = not mode

    def _clone(self) -> "_GradMode":
        return inference_mode(not self.enabled)
