"""Tensors in, Tensors out: the public ops of ``gpuconv.functional`` run their autograd form when any
argument is a Tensor, and stay array-in, array-out on plain arrays (``inplace=`` always goes through
the autograd form, which knows how to write in place).

An op's family module says how it is differentiated, next to the op:

- :func:`recorded` names ops whose autograd form is hand-written in
  :mod:`gpuconv.autograd.functional_ops` under the op's name (in-place writes, several outputs,
  indices, gradients that need flags);
- :func:`autograd_form` declares the rest: the forward array op, its backward array op and what that
  backward reads (arguments, their shapes, the output), from which
  :func:`gpuconv.autograd.functional_ops.record_declared` records the node generically.

``gpuconv.functional`` makes every op registered either way dispatch on Tensors (:func:`differentiable`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from ..autograd.tensor import Tensor

#: What :func:`autograd_form`'s ``saves`` may name besides the forward's parameters.
OUTPUT = "output"
SHAPE_SUFFIX = "_shape"


@dataclass(frozen=True)
class AutogradForm:
    """How a declared op is differentiated.

    Attributes:
        name: the op's name (its public name in gpuconv.functional).
        forward: the array op, ``forward(*args, **kwargs) -> array``.
        backward: ``backward(grad, *saved, **other_args)``: the gradient of each of ``inputs`` (one
            array, or a tuple of one per input, None for one not needed).
        inputs: the forward's parameters that are differentiable (Tensors recorded as the node's inputs).
        saves: what ``backward`` takes after the gradient, in its order: a parameter of the forward
            (the argument, saved with autograd's version check when it is a Tensor),
            ``"<parameter>_shape"`` (that argument's shape) or ``"output"`` (the forward's result).
        label: the node's name (PyTorch's, e.g. ``AvgPool2DBackward``).
        signature: the forward's signature, binding a call's arguments to parameter names.
        passed: the forward's other parameters, passed to ``backward`` by name.
    """

    name: str
    forward: Callable
    backward: Callable
    inputs: tuple[str, ...]
    saves: tuple[str, ...]
    label: str
    signature: inspect.Signature
    passed: tuple[str, ...]


#: Every op with an autograd form, by name: its AutogradForm, or None when it is hand-written.
FORMS: dict[str, AutogradForm | None] = {}


def recorded(*names: str) -> None:
    """Registers ops whose autograd form is the function of the same name in
    :mod:`gpuconv.autograd.functional_ops`."""
    for name in names:
        FORMS[name] = None


def autograd_form(forward: Callable, backward: Callable, *, saves: tuple[str, ...], label: str,
                  inputs: tuple[str, ...] | None = None) -> AutogradForm:
    """Declares ``forward``'s autograd form (see :class:`AutogradForm`); ``inputs`` defaults to the
    forward's first parameter. ``backward`` receives the forward's remaining parameters (those not in
    ``inputs`` nor ``saves``) by name, so its parameters must be named as the forward's."""
    signature = inspect.signature(forward)
    params = list(signature.parameters)
    inputs = (params[0],) if inputs is None else tuple(inputs)
    for name in inputs + tuple(s[:-len(SHAPE_SUFFIX)] if s.endswith(SHAPE_SUFFIX) and s not in params else s
                               for s in saves if s != OUTPUT):
        if name not in params:
            raise ValueError(f"{forward.__name__}: {name!r} is not a parameter of the forward {params}")
    passed = tuple(p for p in params if p not in inputs and p not in saves)
    backward_params = inspect.signature(backward).parameters
    missing = [p for p in passed if p not in backward_params]
    if missing:
        raise ValueError(f"{backward.__name__} must take the forward's parameters {missing} by name")
    form = AutogradForm(forward.__name__, forward, backward, inputs, tuple(saves), label, signature, passed)
    FORMS[form.name] = form
    return form


def _unwrap(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, tuple):
        return type(value)(_unwrap(v) for v in value) if not hasattr(value, "_fields") else \
            type(value)(*(_unwrap(v) for v in value))
    return value


def _autograd_op(name: str) -> Callable:
    functional_ops = importlib.import_module("gpuconv.autograd.functional_ops")
    form = FORMS[name]
    if form is None:
        return getattr(functional_ops, name)
    return functools.partial(functional_ops.record_declared, form)


def differentiable(array_op: Callable, name: str) -> Callable:
    """``array_op`` with dispatch to its autograd form (registered in :data:`FORMS`) for Tensor
    arguments."""
    if name not in FORMS:
        raise KeyError(f"{name} has no autograd form: register it with recorded() or autograd_form()")
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
            autograd_op.append(_autograd_op(name))
        result = autograd_op[0](*args, **kwargs)
        return result if tensors else _unwrap(result)

    op.__wrapped_array_op__ = array_op
    return op
