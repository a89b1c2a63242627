"""The differentiable tensor math: arithmetic with broadcasting, matmul, elementwise functions,
reductions, shape ops, indexing, joining and splitting, casts.

Each op computes on the native arrays and, when it must record (grad mode on and an input requires
grad), attaches a node that saves exactly what its backward needs. Same-shape float sums use the
backend's add kernel (as the residual adds always did), so a training step's kernel sequence is
unchanged; everything else runs through the array module.
"""

from __future__ import annotations

import builtins
import math
import numbers
from typing import Any, Sequence

import numpy as np

from ..backend import get_backend
from ..grad_mode import is_grad_enabled
from ._util import is_float, sum_to, xp_of
from .graph import Node


_TENSOR: list = []


def _tensor_cls():
    # tensor.py imports this module: the class is looked up once, on first use.
    if not _TENSOR:
        from .tensor import Tensor
        _TENSOR.append(Tensor)
    return _TENSOR[0]


def data_of(x: Any) -> Any:
    """The native array (or Python number) behind an operand."""
    return x.data if isinstance(x, _tensor_cls()) else x


def needs_grad(*xs: Any) -> bool:
    if not is_grad_enabled():
        return False
    T = _tensor_cls()
    return any(isinstance(x, T) and x._requires_grad for x in xs)


def attach(array: Any, node: Node, *inputs: Any) -> Any:
    """The output Tensor of ``array``, recorded as made by ``node`` from ``inputs``."""
    T = _tensor_cls()
    node.next_edges = tuple(x._edge() if isinstance(x, T) else None for x in inputs)
    return T._make(array, node)


def wrap(array: Any) -> Any:
    return _tensor_cls()._wrap(array)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


# ---- arithmetic ---------------------------------------------------------------------------------
class AddBackward(Node):
    __slots__ = ("shapes", "alpha")

    def backward(self, g):
        ga = sum_to(g, self.shapes[0]) if self.next_edges[0] is not None else None
        gb = None
        if self.next_edges[1] is not None:
            gb = sum_to(g, self.shapes[1])
            if self.alpha != 1:
                gb = gb * self.alpha
        return ga, gb


class SubBackward(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        ga = sum_to(g, self.shapes[0]) if self.next_edges[0] is not None else None
        gb = -sum_to(g, self.shapes[1]) if self.next_edges[1] is not None else None
        return ga, gb


def _same_float(a: Any, b: Any) -> bool:
    return (hasattr(a, "shape") and hasattr(b, "shape") and a.shape == b.shape and a.dtype == b.dtype
            and is_float(a))


def add(a: Any, b: Any, alpha: Any = 1) -> Any:
    A, B = data_of(a), data_of(b)
    if alpha != 1:
        B = B * alpha
    out = get_backend().add(A, B) if _same_float(A, B) else A + B
    out = _ensure_array(out, A, B)
    if needs_grad(a, b):
        node = AddBackward()
        node.shapes, node.alpha = (_shape(A), _shape(data_of(b))), alpha
        return attach(out, node, a, b)
    return wrap(out)


def sub(a: Any, b: Any) -> Any:
    A, B = data_of(a), data_of(b)
    out = _ensure_array(A - B, A, B)
    if needs_grad(a, b):
        node = SubBackward()
        node.shapes = (_shape(A), _shape(B))
        return attach(out, node, a, b)
    return wrap(out)


class MulBackward(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        a, b = self.saved()
        ga = sum_to(g * b, self.shapes[0]) if self.next_edges[0] is not None else None
        gb = sum_to(g * a, self.shapes[1]) if self.next_edges[1] is not None else None
        return ga, gb


def mul(a: Any, b: Any) -> Any:
    A, B = data_of(a), data_of(b)
    out = _ensure_array(A * B, A, B)
    if needs_grad(a, b):
        node = MulBackward()
        node.shapes = (_shape(A), _shape(B))
        wants_a, wants_b = _wants(a), _wants(b)
        node.save(a if wants_b else None, b if wants_a else None)
        return attach(out, node, a, b)
    return wrap(out)


class DivBackward(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        a, b = self.saved()
        ga = sum_to(g / b, self.shapes[0]) if self.next_edges[0] is not None else None
        gb = sum_to(-g * a / (b * b), self.shapes[1]) if self.next_edges[1] is not None else None
        return ga, gb


def div(a: Any, b: Any) -> Any:
    A, B = data_of(a), data_of(b)
    out = _ensure_array(A / B, A, B)
    if needs_grad(a, b):
        node = DivBackward()
        node.shapes = (_shape(A), _shape(B))
        node.save(a if _wants(b) else None, b)
        return attach(out, node, a, b)
    return wrap(out)


class NegBackward(Node):
    __slots__ = ()

    def backward(self, g):
        return (-g,)


def neg(a: Any) -> Any:
    out = -data_of(a)
    return attach(out, NegBackward(), a) if needs_grad(a) else wrap(out)


class PowBackward(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        a, b, out = self.saved()
        xp = xp_of(g)
        ga = gb = None
        if self.next_edges[0] is not None:
            ga = sum_to(g * b * a ** (b - 1) if not _is_zero_scalar(b) else g * 0, self.shapes[0])
        if self.next_edges[1] is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = xp.where(a > 0, xp.log(xp.where(a > 0, a, 1)), xp.where(a == 0, -xp.inf, xp.nan))
            # d(a^b)/db = a^b log a; PyTorch's convention: 0 where a == 0 and b >= 0.
            gb_full = g * out * log_a
            gb_full = xp.where((a == 0) & (b >= 0), 0, gb_full)
            gb = sum_to(gb_full.astype(g.dtype, copy=False), self.shapes[1])
        return ga, gb


def _is_zero_scalar(b: Any) -> bool:
    return isinstance(b, numbers.Number) and b == 0


def pow(a: Any, b: Any) -> Any:  # noqa: A001 - torch.pow
    A, B = data_of(a), data_of(b)
    out = _ensure_array(A ** B, A, B)
    if needs_grad(a, b):
        node = PowBackward()
        node.shapes = (_shape(A), _shape(B))
        result = attach(out, node, a, b)
        node.save(a, b, result if _wants(b) else None)
        return result
    return wrap(out)


def rpow(a: Any, b: Any) -> Any:
    """b ** a for a number or array b."""
    return pow(_constant_like(b, data_of(a)), a)


def _constant_like(value: Any, like: Any) -> Any:
    if isinstance(value, numbers.Number):
        return xp_of(like).asarray(value, dtype=like.dtype if is_float(like) else None)
    return value


def _wants(x: Any) -> bool:
    return isinstance(x, _tensor_cls()) and x._requires_grad


def _ensure_array(out: Any, *operands: Any) -> Any:
    """NumPy returns scalars for 0-d results: keep every result an array of the operands' module."""
    if isinstance(out, np.generic):
        return np.asarray(out)
    return out


class MatmulBackward(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        a, b = self.saved()
        xp = xp_of(g)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # The dims matmul dropped for 1-D operands come back: b's trailing one first, so that a 1-D @ 1-D
        # gradient (0-d) becomes (1, 1).
        g2 = g
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if self.next_edges[0] is not None:
            ga = xp.matmul(g2, xp.swapaxes(b2, -1, -2))
            if a.ndim == 1:
                ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:])
                ga = sum_to(ga, a.shape) if ga.shape != a.shape else ga
            else:
                ga = sum_to(ga, a.shape)
        if self.next_edges[1] is not None:
            gb = xp.matmul(xp.swapaxes(a2, -1, -2), g2)
            if b.ndim == 1:
                gb = gb[..., 0]
            gb = sum_to(gb, b.shape)
        return ga, gb


def matmul(a: Any, b: Any) -> Any:
    A, B = data_of(a), data_of(b)
    if getattr(A, "ndim", 0) == 0 or getattr(B, "ndim", 0) == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, got "
                           f"{getattr(A, 'ndim', 0)}D and {getattr(B, 'ndim', 0)}D")
    out = _ensure_array(xp_of(A).matmul(A, B))
    if needs_grad(a, b):
        node = MatmulBackward()
        node.save(a, b)
        return attach(out, node, a, b)
    return wrap(out)


# ---- elementwise functions ------------------------------------------------------------------------
class _UnaryBackward(Node):
    """Backward of f(x) given ``rule(g, x_or_y)`` over the one saved array."""

    __slots__ = ("rule", "label")

    @property
    def name(self) -> str:
        return self.label

    def backward(self, g):
        (saved,) = self.saved()
        return (self.rule(g, saved),)


def _unary(a: Any, forward, rule, label: str, save: str) -> Any:
    A = data_of(a)
    out = _ensure_array(forward(xp_of(A), A))
    if needs_grad(a):
        node = _UnaryBackward()
        node.rule, node.label = rule, label
        result = attach(out, node, a)
        node.save(a if save == "input" else result)
        return result
    return wrap(out)


def exp(a):
    return _unary(a, lambda xp, x: xp.exp(x), lambda g, y: g * y, "ExpBackward", "output")


def log(a):
    return _unary(a, lambda xp, x: xp.log(x), lambda g, x: g / x, "LogBackward", "input")


def sqrt(a):
    return _unary(a, lambda xp, x: xp.sqrt(x), lambda g, y: g / (2 * y), "SqrtBackward", "output")


def rsqrt(a):
    return _unary(a, lambda xp, x: 1 / xp.sqrt(x), lambda g, y: -0.5 * g * y * y * y, "RsqrtBackward", "output")


def abs(a):  # noqa: A001 - torch.abs
    return _unary(a, lambda xp, x: xp.abs(x), lambda g, x: g * xp_of(x).sign(x), "AbsBackward", "input")


def sigmoid(a):
    from .. import functional as F
    return F.sigmoid(a)


def tanh(a):
    from .. import functional as F
    return F.tanh(a)


def relu(a):
    from .. import functional as F
    return F.relu(a)


def sin(a):
    return _unary(a, lambda xp, x: xp.sin(x), lambda g, x: g * xp_of(x).cos(x), "SinBackward", "input")


def cos(a):
    return _unary(a, lambda xp, x: xp.cos(x), lambda g, x: -g * xp_of(x).sin(x), "CosBackward", "input")


class ClampBackward(Node):
    __slots__ = ("low", "high")

    def backward(self, g):
        (x,) = self.saved()
        inside = xp_of(x).ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x <= self.high
        return (g * inside,)


def clamp(a: Any, min: Any = None, max: Any = None) -> Any:  # noqa: A002 - torch.clamp
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    T = _tensor_cls()
    if isinstance(min, T) or isinstance(max, T):
        # Tensor bounds get their gradient where they are the result (PyTorch's clamp: x's where
        # min <= x <= max, min's where x < min, max's where the result exceeds max).
        out = a
        if min is not None:
            out = where(data_of(out) < data_of(min), min, out)
        if max is not None:
            out = where(data_of(out) > data_of(max), max, out)
        return out
    A = data_of(a)
    out = xp_of(A).clip(A, min, max)
    if needs_grad(a):
        node = ClampBackward()
        node.low, node.high = min, max
        node.save(a)
        return attach(out, node, a)
    return wrap(out)


class MaxMinBackward(Node):
    """maximum/minimum: the gradient goes to the larger (smaller) operand; ties split it in half."""

    __slots__ = ("shapes", "take_max")

    def backward(self, g):
        a, b = self.saved()
        xp = xp_of(g)
        pick_a = (a > b) if self.take_max else (a < b)
        tie = a == b
        wa = xp.where(tie, 0.5, pick_a.astype(g.dtype)).astype(g.dtype, copy=False)
        ga = sum_to(g * wa, self.shapes[0]) if self.next_edges[0] is not None else None
        gb = sum_to(g * (1 - wa), self.shapes[1]) if self.next_edges[1] is not None else None
        return ga, gb


def _maxmin(a, b, take_max: bool):
    A, B = data_of(a), data_of(b)
    xp = xp_of(A if hasattr(A, "shape") else B)
    out = _ensure_array((xp.maximum if take_max else xp.minimum)(A, B))
    if needs_grad(a, b):
        node = MaxMinBackward()
        node.shapes, node.take_max = (_shape(A), _shape(B)), take_max
        node.save(a, b)
        return attach(out, node, a, b)
    return wrap(out)


def maximum(a, b):
    return _maxmin(a, b, True)


def minimum(a, b):
    return _maxmin(a, b, False)


class WhereBackward(Node):
    __slots__ = ("shapes",)

    def backward(self, g):
        (cond,) = self.saved()
        zero = g.dtype.type(0)
        ga = sum_to(xp_of(g).where(cond, g, zero), self.shapes[0]) if self.next_edges[0] is not None else None
        gb = sum_to(xp_of(g).where(cond, zero, g), self.shapes[1]) if self.next_edges[1] is not None else None
        return ga, gb


def where(condition: Any, a: Any, b: Any) -> Any:
    C, A, B = data_of(condition), data_of(a), data_of(b)
    xp = xp_of(C)
    out = xp.where(C, A, B)
    if needs_grad(a, b):
        node = WhereBackward()
        node.shapes = (_shape(A), _shape(B))
        node.save(C)
        return attach(out, node, a, b)
    return wrap(out)


# ---- reductions -----------------------------------------------------------------------------------
def _axes(dim: Any, ndim: int) -> tuple[int, ...] | None:
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, numbers.Integral) or isinstance(d, bool):
            raise TypeError(f"dim must be an int or a tuple of ints, got {dim!r}")
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise IndexError(f"Dimension out of range (expected to be in range of [{-builtins.max(ndim, 1)}, "
                             f"{builtins.max(ndim, 1) - 1}], but got {d})")
        out.append(int(d) % builtins.max(ndim, 1))
    return tuple(out)


def _expand_back(g: Any, shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdim: bool) -> Any:
    if isinstance(g, np.generic):
        g = np.asarray(g)
    xp = xp_of(g)
    if axes is None:
        axes = tuple(range(len(shape)))
    if not keepdim and len(shape):
        for ax in sorted(axes):
            g = xp.expand_dims(g, ax)
    return xp.broadcast_to(g, shape)


class SumBackward(Node):
    __slots__ = ("shape", "axes", "keepdim", "scale")

    def backward(self, g):
        if self.scale != 1:
            g = g * g.dtype.type(self.scale)
        return (_expand_back(g, self.shape, self.axes, self.keepdim),)


def sum(a: Any, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Any:  # noqa: A001 - torch.sum
    A = data_of(a)
    axes = _axes(dim, A.ndim)
    out = _ensure_array(A.sum(axis=axes, keepdims=keepdim, dtype=dtype))
    if needs_grad(a):
        node = SumBackward()
        node.shape, node.axes, node.keepdim, node.scale = A.shape, axes, keepdim, 1
        return attach(out, node, a)
    return wrap(out)


def mean(a: Any, dim: Any = None, keepdim: bool = False) -> Any:
    A = data_of(a)
    if not is_float(A):
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got {A.dtype}")
    axes = _axes(dim, A.ndim)
    out = _ensure_array(A.mean(axis=axes, keepdims=keepdim))
    if needs_grad(a):
        count = A.size if axes is None else math.prod(A.shape[i] for i in axes)
        node = SumBackward()
        node.shape, node.axes, node.keepdim, node.scale = A.shape, axes, keepdim, 1.0 / builtins.max(count, 1)
        return attach(out, node, a)
    return wrap(out)


class VarBackward(Node):
    __slots__ = ("axes", "keepdim", "denominator")

    def backward(self, g):
        (x,) = self.saved()
        centered = x - x.mean(axis=self.axes, keepdims=True)
        g = _expand_back(g, x.shape, self.axes, self.keepdim)
        return (g * centered * (2.0 / self.denominator),)


def var(a: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *, correction: Any = None) -> Any:
    A = data_of(a)
    if unbiased is not None and correction is not None:
        raise ValueError("var: pass either unbiased or correction, not both")
    ddof = int(correction) if correction is not None else (0 if unbiased is False else 1)
    axes = _axes(dim, A.ndim)
    count = A.size if axes is None else math.prod(A.shape[i] for i in axes)
    out = _ensure_array(A.var(axis=axes, ddof=ddof, keepdims=keepdim)) if count - ddof > 0 else \
        xp_of(A).full(A.mean(axis=axes, keepdims=keepdim).shape, np.nan, A.dtype)
    if needs_grad(a):
        node = VarBackward()
        node.axes, node.keepdim, node.denominator = axes, keepdim, builtins.max(count - ddof, 0) or np.nan
        node.save(a)
        return attach(out, node, a)
    return wrap(out)


def std(a: Any, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *, correction: Any = None) -> Any:
    return sqrt(var(a, dim, unbiased, keepdim, correction=correction))


class AmaxBackward(Node):
    """amax/amin (and max()/min() without dim): the gradient is shared evenly among tied extremes."""

    __slots__ = ("axes", "keepdim")

    def backward(self, g):
        x, y = self.saved()
        shape = x.shape
        y_full = _expand_back(y, shape, self.axes, self.keepdim)
        mask = (x == y_full).astype(g.dtype)
        count = mask.sum(axis=self.axes, keepdims=True)
        return (_expand_back(g, shape, self.axes, self.keepdim) * mask / count,)


def _amax(a: Any, dim: Any, keepdim: bool, take_max: bool) -> Any:
    A = data_of(a)
    axes = _axes(dim, A.ndim)
    if A.size == 0:
        raise RuntimeError(f"{'amax' if take_max else 'amin'}(): expected a non-empty input")
    out = _ensure_array((A.max if take_max else A.min)(axis=axes, keepdims=keepdim))
    if needs_grad(a):
        node = AmaxBackward()
        node.axes, node.keepdim = axes, keepdim
        result = attach(out, node, a)
        node.save(a, result)
        return result
    return wrap(out)


def amax(a, dim=None, keepdim=False):
    return _amax(a, dim, keepdim, True)


def amin(a, dim=None, keepdim=False):
    return _amax(a, dim, keepdim, False)


class IndexReduceBackward(Node):
    """max/min along a dim: the gradient goes to the returned index only."""

    __slots__ = ("shape", "dim", "keepdim")

    def backward(self, g):
        (indices,) = self.saved()
        xp = xp_of(g)
        out = xp.zeros(self.shape, g.dtype)
        if not self.keepdim:
            g = xp.expand_dims(g, self.dim)
            indices = xp.expand_dims(indices, self.dim)
        xp.put_along_axis(out, indices, g, axis=self.dim)
        return (out,)


def _reduce_with_indices(a: Any, dim: Any, keepdim: bool, take_max: bool):
    from collections import namedtuple

    A = data_of(a)
    (axis,) = _axes(dim, A.ndim)
    xp = xp_of(A)
    if A.shape and A.shape[axis] == 0:
        raise IndexError("max(): cannot reduce over a zero-size dimension")
    indices = (xp.argmax if take_max else xp.argmin)(A, axis=axis, keepdims=True)
    values = xp.take_along_axis(A, indices, axis=axis)
    if not keepdim:
        values, indices = values.squeeze(axis), indices.squeeze(axis)
    T = _tensor_cls()
    index_tensor = T._wrap(_ensure_array(indices))
    if needs_grad(a):
        node = IndexReduceBackward()
        node.shape, node.dim, node.keepdim = A.shape, axis, keepdim
        node.save(indices)
        node.next_edges = (a._edge(),)
        value_tensor = T._make(_ensure_array(values), node, 0)
    else:
        value_tensor = T._wrap(_ensure_array(values))
    result = namedtuple("max" if take_max else "min", ["values", "indices"])
    return result(value_tensor, index_tensor)


def max(a: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001 - torch.max
    if dim is None:
        return _amax(a, None, False, True)
    if isinstance(dim, _tensor_cls()) or hasattr(dim, "shape"):
        return maximum(a, dim)
    return _reduce_with_indices(a, dim, keepdim, True)


def min(a: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001 - torch.min
    if dim is None:
        return _amax(a, None, False, False)
    if isinstance(dim, _tensor_cls()) or hasattr(dim, "shape"):
        return minimum(a, dim)
    return _reduce_with_indices(a, dim, keepdim, False)


def argmax(a: Any, dim: Any = None, keepdim: bool = False) -> Any:
    A = data_of(a)
    if dim is None:
        return wrap(_ensure_array(xp_of(A).argmax(A)))
    (axis,) = _axes(dim, A.ndim)
    return wrap(_ensure_array(xp_of(A).argmax(A, axis=axis, keepdims=keepdim)))


def argmin(a: Any, dim: Any = None, keepdim: bool = False) -> Any:
    A = data_of(a)
    if dim is None:
        return wrap(_ensure_array(xp_of(A).argmin(A)))
    (axis,) = _axes(dim, A.ndim)
    return wrap(_ensure_array(xp_of(A).argmin(A, axis=axis, keepdims=keepdim)))


# ---- shape ops (views: they share their input's version counter) -----------------------------------
class ReshapeBackward(Node):
    __slots__ = ("shape",)

    def backward(self, g):
        return (g.reshape(self.shape),)


def _view_result(a: Any, out: Any, node: Node | None) -> Any:
    """A result that may share memory with ``a``: it shares ``a``'s version counter when it does."""
    T = _tensor_cls()
    A = data_of(a)
    result = T._make(out, node) if node is not None else T._wrap(out)
    if isinstance(a, T) and (out is A or _shares(out, A)):
        result._version = a._version
        result._base = a._base if a._base is not None else a
    return result


def _shares(view: Any, base: Any) -> bool:
    root = view.base
    target = base if base.base is None else base.base
    while root is not None:
        if root is target or root is base:
            return True
        root = root.base
    return False


def reshape(a: Any, *shape: Any) -> Any:
    A = data_of(a)
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = tuple(shape[0])
    out = A.reshape(shape)
    node = None
    if needs_grad(a):
        node = ReshapeBackward()
        node.shape = A.shape
        node.next_edges = (a._edge(),)
    return _view_result(a, out, node)


def view(a: Any, *shape: Any) -> Any:
    A = data_of(a)
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        if isinstance(shape[0], (np.dtype, type, str)):
            raise TypeError("view(dtype) is not supported; use .to(dtype)")
        shape = tuple(shape[0])
    try:
        out = A.view()
        out.shape = shape
    except AttributeError as exc:
        raise RuntimeError(f"view size is not compatible with input tensor's size and stride (shape "
                           f"{tuple(A.shape)} to {tuple(shape)}): use .reshape(...) instead") from exc
    except ValueError as exc:
        raise RuntimeError(f"shape {tuple(shape)} is invalid for input of size {A.size}") from exc
    node = None
    if needs_grad(a):
        node = ReshapeBackward()
        node.shape = A.shape
        node.next_edges = (a._edge(),)
    return _view_result(a, out, node)


def flatten(a: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    A = data_of(a)
    if A.ndim == 0:
        return reshape(a, (1,))
    start, end = _axes(start_dim, A.ndim)[0], _axes(end_dim, A.ndim)[0]
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = A.shape[:start] + (int(np.prod(A.shape[start:end + 1])),) + A.shape[end + 1:]
    return reshape(a, shape)


class PermuteBackward(Node):
    __slots__ = ("inverse",)

    def backward(self, g):
        return (g.transpose(self.inverse),)


def permute(a: Any, *dims: Any) -> Any:
    A = data_of(a)
    if len(dims) == 1 and not isinstance(dims[0], numbers.Integral):
        dims = tuple(dims[0])
    axes = _axes(dims, A.ndim) if dims else ()
    if sorted(axes) != list(range(A.ndim)):
        raise RuntimeError(f"permute(dims): dims must be a permutation of 0..{A.ndim - 1}, got {dims}")
    out = A.transpose(axes)
    node = None
    if needs_grad(a):
        node = PermuteBackward()
        node.inverse = tuple(int(i) for i in np.argsort(axes))
        node.next_edges = (a._edge(),)
    return _view_result(a, out, node)


def transpose(a: Any, dim0: int, dim1: int) -> Any:
    A = data_of(a)
    if A.ndim == 0:
        return reshape(a, ())
    d0, d1 = _axes((dim0, dim1), A.ndim)
    axes = list(range(A.ndim))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return permute(a, axes)


def squeeze(a: Any, dim: Any = None) -> Any:
    A = data_of(a)
    if dim is None:
        shape = tuple(s for s in A.shape if s != 1)
    else:
        axes = _axes(dim, A.ndim) if A.ndim else ()
        shape = tuple(s for i, s in enumerate(A.shape) if not (i in axes and s == 1))
    return reshape(a, shape)


def unsqueeze(a: Any, dim: int) -> Any:
    A = data_of(a)
    (axis,) = _axes(dim, A.ndim + 1)
    return reshape(a, A.shape[:axis] + (1,) + A.shape[axis:])


class ExpandBackward(Node):
    __slots__ = ("shape",)

    def backward(self, g):
        return (sum_to(g, self.shape),)


def expand(a: Any, *sizes: Any) -> Any:
    A = data_of(a)
    if len(sizes) == 1 and not isinstance(sizes[0], numbers.Integral):
        sizes = tuple(sizes[0])
    lead = len(sizes) - A.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                           f"number of dimensions in the tensor ({A.ndim})")
    shape = tuple(A.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
    out = xp_of(A).broadcast_to(A, shape)
    node = None
    if needs_grad(a):
        node = ExpandBackward()
        node.shape = A.shape
        node.next_edges = (a._edge(),)
    return _view_result(a, out, node)


class IdentityBackward(Node):
    __slots__ = ()

    def backward(self, g):
        return (g,)


def contiguous(a: Any) -> Any:
    A = data_of(a)
    if A.flags.c_contiguous:
        return a if isinstance(a, _tensor_cls()) else wrap(A)
    out = get_backend().contiguous(A) if get_backend().is_native(A) else xp_of(A).ascontiguousarray(A)
    return attach(out, IdentityBackward(), a) if needs_grad(a) else wrap(out)


class CastBackward(Node):
    __slots__ = ("dtype",)

    def backward(self, g):
        return (g.astype(self.dtype),)


def cast(a: Any, dtype: Any) -> Any:
    A = data_of(a)
    dtype = np.dtype(dtype)
    if A.dtype == dtype:
        return a
    out = A.astype(dtype)
    if needs_grad(a) and dtype.kind == "f":
        node = CastBackward()
        node.dtype = A.dtype
        return attach(out, node, a)
    return wrap(out)


# ---- indexing ---------------------------------------------------------------------------------------
def _index_arrays(index: Any) -> Any:
    T = _tensor_cls()
    if isinstance(index, T):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, T) else i for i in index)
    if isinstance(index, list) and any(isinstance(i, T) for i in index):
        return [i.data if isinstance(i, T) else i for i in index]
    return index


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral)) and not isinstance(i, bool)
               for i in items)


class IndexBackward(Node):
    __slots__ = ("shape", "dtype", "index", "basic")

    def backward(self, g):
        xp = xp_of(g)
        out = xp.zeros(self.shape, g.dtype)
        if self.basic:
            out[self.index] = g
        elif xp is np:
            np.add.at(out, self.index, g)
        else:
            import cupyx
            cupyx.scatter_add(out, self.index, g)
        return (out,)


def getitem(a: Any, index: Any) -> Any:
    A = data_of(a)
    index = _index_arrays(index)
    out = A[index]
    basic = _is_basic(index)
    if not hasattr(out, "shape") or isinstance(out, np.generic):
        out = xp_of(A).asarray(out)
    node = None
    if needs_grad(a):
        node = IndexBackward()
        node.shape, node.dtype, node.index, node.basic = A.shape, A.dtype, index, basic
        node.next_edges = (a._edge(),)
    if basic:
        return _view_result(a, out, node)
    T = _tensor_cls()
    return T._make(out, node) if node is not None else T._wrap(out)


# ---- joining and splitting --------------------------------------------------------------------------
class CatBackward(Node):
    __slots__ = ("dim", "sizes")

    def backward(self, g):
        bounds = np.cumsum(self.sizes)[:-1]
        parts = xp_of(g).split(g, [int(b) for b in bounds], axis=self.dim)
        return tuple(p if e is not None else None for p, e in zip(parts, self.next_edges))


def cat(tensors: Sequence[Any], dim: int = 0) -> Any:
    if isinstance(tensors, _tensor_cls()) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError("cat(): expected a non-empty list or tuple of tensors")
    arrays = [data_of(t) for t in tensors]
    ndim = arrays[0].ndim
    if ndim == 0:
        raise RuntimeError("zero-dimensional tensor cannot be concatenated")
    (axis,) = _axes(dim, ndim)
    for i, a in enumerate(arrays):
        if a.ndim != ndim or a.shape[:axis] + a.shape[axis + 1:] != arrays[0].shape[:axis] + arrays[0].shape[axis + 1:]:
            raise RuntimeError(f"Sizes of tensors must match except in dimension {axis}: tensor 0 has shape "
                               f"{tuple(arrays[0].shape)}, tensor {i} has shape {tuple(a.shape)}")
    out = xp_of(arrays[0]).concatenate(arrays, axis=axis)
    if needs_grad(*tensors):
        node = CatBackward()
        node.dim, node.sizes = axis, [a.shape[axis] for a in arrays]
        return attach(out, node, *tensors)
    return wrap(out)


def stack(tensors: Sequence[Any], dim: int = 0) -> Any:
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError("stack(): expected a non-empty list or tuple of tensors")
    ndim = data_of(tensors[0]).ndim
    (axis,) = _axes(dim, ndim + 1)
    shapes = {tuple(data_of(t).shape) for t in tensors}
    if len(shapes) != 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, got {sorted(shapes)}")
    return cat([unsqueeze(t, axis) for t in tensors], axis)


class SplitBackward(Node):
    __slots__ = ("dim", "sizes", "shape", "num_outputs")

    def __init__(self, count: int) -> None:
        super().__init__()
        self.num_outputs = count  # one output per piece

    def backward(self, *grads):
        xp = None
        for g in grads:
            if g is not None:
                xp, dtype = xp_of(g), g.dtype
                break
        parts = []
        for g, size in zip(grads, self.sizes):
            if g is None:
                shape = list(self.shape)
                shape[self.dim] = size
                g = xp.zeros(tuple(shape), dtype)
            parts.append(g)
        return (xp.concatenate(parts, axis=self.dim),)


def split(a: Any, split_size_or_sections: Any, dim: int = 0) -> tuple:
    A = data_of(a)
    (axis,) = _axes(dim, A.ndim)
    length = A.shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral):
        step = int(split_size_or_sections)
        if step <= 0:
            raise RuntimeError(f"split expects split_size be positive, got {step}")
        sizes = [step] * (length // step) + ([length % step] if length % step else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != length:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {length} (input tensor's "
                               f"size at dimension {axis}), but got split_sizes={sizes}")
    bounds = np.cumsum(sizes)[:-1]
    parts = xp_of(A).split(A, [int(b) for b in bounds], axis=axis)
    T = _tensor_cls()
    if not needs_grad(a):
        return tuple(_view_result(a, p, None) for p in parts)
    node = SplitBackward(len(parts))
    node.dim, node.sizes, node.shape = axis, sizes, A.shape
    node.next_edges = (a._edge(),)
    outs = []
    for nr, p in enumerate(parts):
        t = T._make(p, node, nr)
        t._version, t._base = a._version, (a._base if a._base is not None else a)
        outs.append(t)
    return tuple(outs)


def chunk(a: Any, chunks: int, dim: int = 0) -> tuple:
    A = data_of(a)
    if not isinstance(chunks, numbers.Integral) or chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    (axis,) = _axes(dim, A.ndim)
    step = -(-A.shape[axis] // chunks) if A.shape[axis] else 1
    return split(a, builtins.max(step, 1), axis)

