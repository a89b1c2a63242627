"""Argument handling of :func:`gpuconv.memory.estimate` that is more than a type check: the input
sizes it accepts, and the optimizer given by name or as an object."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from .. import nn, optim

#: The kernels take each size as a 32-bit int.
INT32_MAX = 2**31 - 1
#: NumPy and CuPy index an array's bytes with a signed 64-bit int.
MAX_ARRAY_BYTES = 2**63 - 1
#: ``optimizer=`` names, as in ``torch.optim``.
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "adagrad": optim.Adagrad}


def check_input_size(input_shape: tuple[int, ...], dtype: np.dtype) -> None:
    """ValueError for an input no backend can index: a size beyond the kernels' 32-bit ints, or
    more bytes than an array can have. Such a step cannot run, so it gets no estimate."""
    too_large = [(i, v) for i, v in enumerate(input_shape) if v > INT32_MAX]
    if too_large:
        axis, value = too_large[0]
        raise ValueError(f"input_shape[{axis}] = {value} is more than {INT32_MAX}, the largest size the kernels "
                         f"index (32-bit ints); got input_shape {input_shape}")
    size = math.prod(input_shape) * dtype.itemsize
    if size > MAX_ARRAY_BYTES:
        raise ValueError(f"input_shape {input_shape} of {dtype} is {size} bytes, more than an array can index "
                         f"({MAX_ARRAY_BYTES})")


def resolve_optimizer(model: nn.Module, optimizer: Any) -> optim.Optimizer | None:
    """The optimizer ``estimate`` replays: None, a ``gpuconv.optim`` optimizer over (some of) the
    model's parameters, or a name from :data:`OPTIMIZERS` ("adam": ``Adam`` with PyTorch's defaults
    over all of them, made without its state, so that nothing of a parameter's size is allocated)."""
    if optimizer is None:
        return None
    if isinstance(optimizer, str):
        cls = OPTIMIZERS.get(optimizer.lower())
        if cls is None:
            raise ValueError(f"optimizer must be an optimizer object or one of {sorted(OPTIMIZERS)}, "
                             f"got {optimizer!r}")
        return _stateless(cls, model)
    if not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"optimizer must be a gpuconv.optim optimizer, one of {sorted(OPTIMIZERS)} or None, "
                        f"got {type(optimizer).__name__}")
    own = {id(p) for p in model.parameters()}
    foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in own]
    if foreign:
        shapes = ", ".join(str(tuple(p.data.shape)) for p in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise ValueError(f"optimizer holds {len(foreign)} parameter(s) that are not the model's (shapes {shapes}): "
                         "it was made for another model; give one over model.parameters()")
    return optimizer


def _stateless(cls: type, model: nn.Module) -> optim.Optimizer:
    """An optimizer of ``cls`` over ``model.parameters()`` with the defaults of ``cls``'s signature
    (PyTorch's), through the base constructor only: no state, which Adagrad's would create."""
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if name not in ("self", "params") and p.default is not inspect.Parameter.empty}
    optimizer = cls.__new__(cls)
    optim.Optimizer.__init__(optimizer, model.parameters(), defaults)
    return optimizer
