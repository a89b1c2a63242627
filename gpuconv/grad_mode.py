"""Whether forwards keep activations for backward: ``with gpuconv.no_grad():`` turns that off.

Inside ``no_grad`` (as in eval mode) modules keep nothing for backward, so inference needs no
activation memory beyond the layer being computed.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether a training-mode forward keeps what its backward needs (True outside ``no_grad``)."""
    return getattr(_state, "enabled", True)


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
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """``with gpuconv.no_grad():`` (or ``@gpuconv.no_grad()``): forwards keep nothing for backward."""

    enabled = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Turns keeping activations back on inside a ``no_grad`` block."""

    enabled = True
