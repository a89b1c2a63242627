"""Tensors in, Tensors out: the public ops of ``gpuconv.functional`` run their autograd form
(:mod:`gpuconv.autograd.functional_ops`) when any argument is a Tensor, and stay array-in, array-out
on plain arrays (``inplace=`` always goes through the autograd form, which knows how to write in place)."""

from __future__ import annotations

import functools
import importlib
from typing import Any, Callable

from ..autograd.tensor import Tensor


def _unwrap(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, tuple):
        return type(value)(_unwrap(v) for v in value) if not hasattr(value, "_fields") else \
            type(value)(*(_unwrap(v) for v in value))
    return value


def differentiable(array_op: Callable, name: str) -> Callable:
    """``array_op`` with dispatch to the autograd op of the same name for Tensor arguments."""
    autograd_op: list[Callable] = []

    @functools.wraps(array_op)
    def op(*args: Any, **kwargs: Any) -> Any:
        tensors = False
        for a in args:
            if isinstance(a, Tensor):
                tensors = True
                break
        else:
            for v in kwargs.values():
                if isinstance(v, Tensor):
                    tensors = True
                    break
        if not tensors and "inplace" not in kwargs:
            return array_op(*args, **kwargs)
        if not autograd_op:
            autograd_op.append(getattr(importlib.import_module("gpuconv.autograd.functional_ops"), name))
        result = autograd_op[0](*args, **kwargs)
        return result if tensors else _unwrap(result)

    op.__wrapped_array_op__ = array_op
    return op
