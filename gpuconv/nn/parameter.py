"""Parameter: a Tensor that is a module's learnable state (``requires_grad=True`` by default)."""

from __future__ import annotations

from typing import Any

from ..backend import array_kind, get_backend
from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A learnable Tensor of the current backend; assigning one to a Module attribute registers it.

    Attributes:
        data: the values (a numpy or cupy array); optimizers update it in place.
        grad: the accumulated gradient (a Tensor of the same shape and dtype), or None before the
            first backward (and after ``zero_grad()``).
        requires_grad: False freezes it: backward then computes no gradient for it.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        if data is None or array_kind(data) is None:
            raise TypeError(f"Parameter data must be a numpy or cupy array (or a Tensor), got {type(data).__name__}")
        super().__init__(get_backend().asarray(data), requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"

    def __reduce_ex__(self, protocol: int):
        return (Parameter, (self.data, self.requires_grad))


__all__ = ["Parameter"]
