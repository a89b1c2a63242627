"""Stateless ops, forward and backward, written once against the backend interface.

``import gpuconv.functional as F``. Each op validates its arguments (a clear exception before any
kernel runs), does the shape arithmetic, and calls the current backend's primitives.
"""

from . import (activation, arith, batchnorm, channel_dropout, conv, conv_transpose, dropout, group_norm, im2col,
               interpolate, linear, loss, normalization, pad, pool)

# Every family module lists its public names in its __all__ and registers how its ops are
# differentiated (_dispatch.recorded / autograd_form): a new op is added there, not here.
_FAMILIES = (conv, activation, arith, dropout, im2col, linear, loss, normalization, batchnorm, pool, channel_dropout,
             conv_transpose, group_norm, pad, interpolate)

# CuPy's out-of-memory error inside any public op becomes gpuconv.OutOfMemoryError naming it: one
# wrapper here rather than a try in every op. Shape helpers and settings allocate nothing.
from ._memory import translate_out_of_memory as _translate_out_of_memory
# Every differentiable op takes Tensors too (then it records the autograd graph): see _dispatch.
from ._dispatch import FORMS as _FORMS, differentiable as _differentiable

__all__: list[str] = []
for _family in _FAMILIES:
    for _name in _family.__all__:
        _op = getattr(_family, _name)
        if _name in _FORMS:
            _op = _translate_out_of_memory(_differentiable(_op, _name))
        elif _name.endswith("_backward"):
            _op = _translate_out_of_memory(_op)
        globals()[_name] = _op
        __all__.append(_name)
del _family, _name, _op

#: The ops that take Tensors and record their gradient.
DIFFERENTIABLE = tuple(sorted(name for name in __all__ if name in _FORMS))
# The exported names that are no ops (settings, shape helpers, constants): the others are wrapped.
_NOT_OPS = frozenset(name for name in __all__ if name not in _FORMS and not name.endswith("_backward"))
