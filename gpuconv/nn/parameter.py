"""Parameter: a learnable array with its gradient."""

from __future__ import annotations

from typing import Any

from ..backend import array_kind, get_backend


class Parameter:
    """A learnable array of the current backend.

    Attributes:
        data: the values (a numpy or cupy array); optimizers update it in place.
        grad: the accumulated gradient, same shape and dtype as ``data``, or None before the first
            backward (and after ``zero_grad()``).
        requires_grad: False freezes it: backward then computes no gradient for it.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data: Any, requires_grad: bool = True):
        if array_kind(data) is None:
            raise TypeError(f"Parameter data must be a numpy or cupy array, got {type(data).__name__}")
        self.data = get_backend().asarray(data)
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    def numel(self) -> int:
        return int(self.data.size)

    @property
    def nbytes(self) -> int:
        """Bytes of ``data`` (the gradient, when it exists, takes as many again)."""
        return int(self.data.nbytes)

    def accumulate_grad(self, grad: Any) -> None:
        """Adds ``grad`` to ``.grad`` in place (``.grad`` becomes ``grad`` itself when it was None):
        one kernel, no temporary, on the cupy and emulated backends."""
        if self.grad is None:
            self.grad = grad
        else:
            get_backend().add_(self.grad, grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"
