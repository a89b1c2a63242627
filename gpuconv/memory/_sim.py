"""A replay of one training (or inference) step on shapes alone: every array the step allocates,
when it is allocated and when the last reference to it goes away.

Each module type has a forward and a backward rule that mirror its ``forward`` / ``_backward``
code: what it allocates (results, transients of the functional ops), what it keeps for backward,
and what its local variables hold until it returns. The replay's running total of bytes in use
and its maximum are what the allocator sees (before the cupy pool's rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..functional.activation import relu_transient_bytes
from ..functional.batchnorm import batch_norm_transient_bytes
from ..functional.dropout import dropout_transient_bytes
from ..functional.linear import linear_transient_bytes
from ..functional.pool import adaptive_avg_pool2d_transient_bytes, max_pool2d_transient_bytes
from .. import nn
from ..nn.container import Chain, Sequential
from ..nn.resnet_blocks import _Residual
from ._conv import conv_transient_bytes


def nbytes(shape: tuple[int, ...], dtype: Any) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class Array:
    """A simulated array: its size and how many references hold it."""

    __slots__ = ("shape", "nbytes", "refs", "base")

    def __init__(self, shape: tuple[int, ...], nbytes_: int, base: Array | None = None):
        self.shape = tuple(shape)
        self.nbytes = int(nbytes_)
        self.refs = 1
        self.base = base  # a view keeps its base alive


@dataclass
class Row:
    """One leaf module's line in the report."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    saved_bytes: int
    transient_bytes: int
    flops: int


@dataclass
class Timeline:
    """Bytes in use as the replay runs; ``peak`` and the phase where it happened."""

    dtype: np.dtype
    backend: str
    training: bool
    current: int = 0
    peak: int = 0
    peak_phase: str = ""
    phase: str = ""
    round_to: int = 1
    largest_transient: int = 0
    largest_transient_at: str = ""
    saved: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    names: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)

    def _bump(self, extra: int = 0) -> None:
        if self.current + extra > self.peak:
            self.peak = self.current + extra
            self.peak_phase = self.phase

    def rounded(self, nbytes_: int) -> int:
        """``nbytes_`` as the allocator takes it (CuPy's pool: whole 512-byte blocks)."""
        return -(-int(nbytes_) // self.round_to) * self.round_to

    def new(self, shape: tuple[int, ...], nbytes_: int | None = None) -> Array:
        a = Array(shape, self.rounded(nbytes(shape, self.dtype) if nbytes_ is None else nbytes_))
        self.current += a.nbytes
        self._bump()
        return a

    def view(self, a: Array, shape: tuple[int, ...]) -> Array:
        """A reshape of ``a`` (shares its memory)."""
        self.ref(a)
        return Array(shape, 0, base=a)

    def ref(self, a: Array | None) -> Array | None:
        if a is not None:
            a.refs += 1
        return a

    def drop(self, *arrays: Array | None) -> None:
        for a in arrays:
            if a is None:
                continue
            a.refs -= 1
            if a.refs == 0:
                self.current -= a.nbytes
                if a.base is not None:
                    self.drop(a.base)

    def transient(self, nbytes_: int, where: str, results: int = 0) -> None:
        """An op's temporaries on top of what is in use now, next to ``results`` bytes that it
        allocates right after."""
        self._bump(self.rounded(nbytes_) + results)
        if nbytes_ > self.largest_transient:
            self.largest_transient, self.largest_transient_at = int(nbytes_), where

    def op(self, where: str, transient: int, *shapes_or_bytes: Any) -> list[Array]:
        """An op that allocates results (shapes, or (shape, nbytes) pairs) with ``transient`` bytes of
        temporaries alive at its peak next to all of them."""
        sizes = [(s[0], self.rounded(s[1])) if (len(s) == 2 and isinstance(s[0], tuple))
                 else (tuple(s), self.rounded(nbytes(s, self.dtype))) for s in shapes_or_bytes]
        self._bump(self.rounded(transient) + sum(b for _, b in sizes))
        if transient > self.largest_transient:
            self.largest_transient, self.largest_transient_at = int(transient), where
        return [self.new(shape, b) for shape, b in sizes]

    def grad(self, param: nn.Parameter) -> None:
        """A parameter's gradient is produced (backward allocates it; it becomes ``.grad``)."""
        if id(param) not in self.grads:
            self.grads[id(param)] = self.new(param.shape, int(param.nbytes))


FORWARD: dict[type, Callable] = {}
BACKWARD: dict[type, Callable] = {}


def rule(cls: type):
    def register(pair):
        FORWARD[cls], BACKWARD[cls] = pair
        return pair
    return register


def _lookup(table: dict, module: nn.Module) -> Callable:
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls]
    if type(module).__module__.split(".")[0] != "gpuconv" or not any(True for _ in module.children()):
        # A user's module, or one of gpuconv's leaf layers without a rule of its own (GroupNorm,
        # ConvTranspose2d, Upsample, ...): the fallback rules below, from the layer's own shape
        # reports (exact for what it keeps; its op's temporaries are its workspace_bytes).
        return _custom_backward if table is BACKWARD else _custom_forward
    raise NotImplementedError(
        f"the memory estimator has no rule for {type(module).__name__}; add one in gpuconv/memory/_sim.py "
        "(it must mirror the module's forward and backward allocations)")


def forward(t: Timeline, module: nn.Module, x: Array) -> Array:
    """Simulates ``module(x)``; returns the output (one reference, the caller's). ``x`` stays
    referenced by the caller."""
    return _lookup(FORWARD, module)(t, module, x)


def backward(t: Timeline, module: nn.Module, dy: Array, input_grad: bool) -> Array | None:
    """Simulates ``module.backward(dy)``; returns dx (or None). ``dy`` stays referenced by the caller."""
    return _lookup(BACKWARD, module)(t, module, dy, input_grad)


def _save(t: Timeline, module: nn.Module, *arrays: Array) -> None:
    """``module._save(*arrays)``: keeps references when training; arrays created for it and not
    kept are dropped by the caller."""
    if t.training:
        t.saved[id(module)] = [t.ref(a) for a in arrays]


def _take(t: Timeline, module: nn.Module) -> list[Array]:
    return t.saved.pop(id(module))


def _row(t: Timeline, module: nn.Module, in_shape, out_shape, transient: int, flops: int = 0) -> None:
    params = sum(p.numel() for p in module._parameters.values() if p is not None)
    saved = module.saved_bytes(in_shape, t.dtype) if hasattr(module, "_saved_spec") else 0
    t.rows.append(Row(t.names.get(id(module), type(module).__name__), type(module).__name__, tuple(out_shape),
                      params, int(saved), int(transient), int(flops)))


# ---- Conv2d -------------------------------------------------------------------------------------
def _conv_args(m: nn.Conv2d) -> tuple:
    return m.stride, m.padding, m.dilation, m.groups, m.algo


def _conv_transient(t: Timeline, m: nn.Conv2d, x_shape, direction: str) -> int:
    return conv_transient_bytes(x_shape, m.weight.shape, t.dtype, *_conv_args(m), direction=direction,
                                backend=t.backend, bias=m.bias is not None)


def _conv_forward(t: Timeline, m: nn.Conv2d, x: Array) -> Array:
    out = m.output_shape(x.shape)
    tr = _conv_transient(t, m, x.shape, "forward")
    (y,) = t.op(f"{t.names.get(id(m))} forward", tr, out)
    if t.phase == "forward":
        bwd = max(_conv_transient(t, m, x.shape, "backward_data"), _conv_transient(t, m, x.shape, "backward_weight"))
        macs = int(np.prod(out)) * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        _row(t, m, x.shape, out, max(tr, bwd), 2 * macs)
    _save(t, m, x)
    return y


def _conv_backward(t: Timeline, m: nn.Conv2d, dy: Array, input_grad: bool) -> Array | None:
    (x,) = _take(t, m)
    where = f"{t.names.get(id(m))} backward"
    dx = None
    if input_grad:
        (dx,) = t.op(where, _conv_transient(t, m, x.shape, "backward_data"), x.shape)
    if m.weight.requires_grad:
        t.transient(_conv_transient(t, m, x.shape, "backward_weight"), where, m.weight.nbytes)
        t.grad(m.weight)
    if m.bias is not None and m.bias.requires_grad:
        t.grad(m.bias)
    t.drop(x)
    return dx


rule(nn.Conv2d)((_conv_forward, _conv_backward))


# ---- Linear -------------------------------------------------------------------------------------
def _linear_forward(t: Timeline, m: nn.Linear, x: Array) -> Array:
    out = m.output_shape(x.shape)
    tr = linear_transient_bytes(x.shape, m.out_features, t.dtype, "forward", t.backend, m.bias is not None)
    (y,) = t.op(f"{t.names.get(id(m))} forward", tr, out)
    if t.phase == "forward":
        _row(t, m, x.shape, out, tr, 2 * int(np.prod(x.shape[:-1])) * m.in_features * m.out_features)
    _save(t, m, x)
    return y


def _linear_backward(t: Timeline, m: nn.Linear, dy: Array, input_grad: bool) -> Array | None:
    (x,) = _take(t, m)
    dx = t.op("linear backward", 0, x.shape)[0] if input_grad else None
    if m.weight.requires_grad:
        t.grad(m.weight)
    if m.bias is not None and m.bias.requires_grad:
        t.grad(m.bias)
    t.drop(x)
    return dx


rule(nn.Linear)((_linear_forward, _linear_backward))


# ---- ReLU ---------------------------------------------------------------------------------------
def _relu_forward(t: Timeline, m: nn.Module, x: Array) -> Array:
    (y,) = t.op("relu forward", relu_transient_bytes(x.shape, t.dtype, "forward", t.backend), x.shape)
    if t.phase == "forward":
        _row(t, m, x.shape, x.shape, relu_transient_bytes(x.shape, t.dtype, "backward", t.backend))
    _save(t, m, y)
    return y


def _relu_backward(t: Timeline, m: nn.Module, dy: Array, input_grad: bool) -> Array | None:
    (y,) = _take(t, m)
    dx = t.op("relu backward", relu_transient_bytes(y.shape, t.dtype, "backward", t.backend), y.shape)[0] if input_grad else None
    t.drop(y)
    return dx


rule(nn.ReLU)((_relu_forward, _relu_backward))


# ---- BatchNorm2d --------------------------------------------------------------------------------
def _bn_forward(t: Timeline, m: nn.BatchNorm2d, x: Array) -> Array:
    c = (m.num_features,)
    y, mean, invstd = t.op("batch_norm forward", batch_norm_transient_bytes(x.shape, t.dtype, "forward", t.backend),
                           x.shape, c, c)
    if t.phase == "forward":
        _row(t, m, x.shape, x.shape, batch_norm_transient_bytes(x.shape, t.dtype, "backward", t.backend, False))
    _save(t, m, x, mean, invstd)
    t.drop(mean, invstd)
    return y


def _bn_backward(t: Timeline, m: nn.BatchNorm2d, dy: Array, input_grad: bool) -> Array | None:
    x, mean, invstd = _take(t, m)
    c = (m.num_features,)
    where = "batch_norm backward"
    sums = t.op(where, batch_norm_transient_bytes(x.shape, t.dtype, "backward", t.backend, input_grad), c, c)
    dx = t.op(where, 0, x.shape)[0] if input_grad else None
    # dweight and dbias are the sums themselves.
    for param, s in ((m.weight, sums[1]), (m.bias, sums[0])):
        if param is not None and param.requires_grad and id(param) not in t.grads:
            t.grads[id(param)] = s
        else:
            t.drop(s)
    t.drop(x, mean, invstd)
    return dx


rule(nn.BatchNorm2d)((_bn_forward, _bn_backward))


# ---- pooling ------------------------------------------------------------------------------------
def _maxpool_transient(t: Timeline, m: nn.MaxPool2d, x_shape, direction: str, **indices) -> int:
    return max_pool2d_transient_bytes(x_shape, t.dtype, direction, t.backend, m.kernel_size, m.stride, m.padding,
                                      m.dilation, m.ceil_mode, **indices)


def _index_dtype(x_shape) -> type:
    return np.int32 if int(x_shape[2]) * int(x_shape[3]) < 2**31 else np.int64


def _maxpool_forward(t: Timeline, m: nn.MaxPool2d, x: Array) -> Array:
    out = m.output_shape(x.shape)
    if t.phase == "forward":
        _row(t, m, x.shape, out, _maxpool_transient(t, m, x.shape, "backward"))
    if m.return_indices:
        # PyTorch's int64 indices are returned; a kept int32 copy is made of them.
        y, idx = t.op("max_pool2d forward", _maxpool_transient(t, m, x.shape, "forward"), out,
                      (out, nbytes(out, np.int64)))
        if t.training:
            kept = t.new(out, nbytes(out, _index_dtype(x.shape)))
            _save(t, m, x, kept)
            t.drop(kept)
        t.drop(idx)
        return y
    if not t.training:
        (y,) = t.op("max_pool2d forward", _maxpool_transient(t, m, x.shape, "forward", with_indices=False), out)
        return y
    index = _index_dtype(x.shape)
    y, idx = t.op("max_pool2d forward", _maxpool_transient(t, m, x.shape, "forward", index_dtype=index), out,
                  (out, nbytes(out, index)))
    _save(t, m, x, idx)
    t.drop(idx)
    return y


def _maxpool_backward(t: Timeline, m: nn.MaxPool2d, dy: Array, input_grad: bool) -> Array | None:
    x, idx = _take(t, m)
    dx = t.op("max_pool2d backward", _maxpool_transient(t, m, x.shape, "backward"), x.shape)[0] if input_grad else None
    t.drop(x, idx)
    return dx


rule(nn.MaxPool2d)((_maxpool_forward, _maxpool_backward))


def _shape_only_forward(t: Timeline, m: nn.Module, x: Array) -> Array:
    out = m.output_shape(x.shape)
    (y,) = t.op(f"{type(m).__name__} forward", 0, out)
    if t.phase == "forward":
        _row(t, m, x.shape, out, 0)
    _save(t, m)
    return y


def _shape_only_backward(t: Timeline, m: nn.Module, dy: Array, input_grad: bool) -> Array | None:
    t.saved.pop(id(m), None)
    shape = t.shapes[id(m)]
    tr = adaptive_avg_pool2d_transient_bytes(shape, t.dtype, "backward", t.backend) \
        if isinstance(m, nn.AdaptiveAvgPool2d) else 0
    return t.op(f"{type(m).__name__} backward", tr, shape)[0] if input_grad else None


def _avgpool_forward(t: Timeline, m: nn.Module, x: Array) -> Array:
    t.shapes[id(m)] = x.shape
    return _shape_only_forward(t, m, x)


rule(nn.AdaptiveAvgPool2d)((_avgpool_forward, _shape_only_backward))
rule(nn.AvgPool2d)((_avgpool_forward, _shape_only_backward))


# ---- views: Flatten, Identity -------------------------------------------------------------------
def _view_forward(t: Timeline, m: nn.Module, x: Array) -> Array:
    out = m.output_shape(x.shape)
    if t.phase == "forward":
        _row(t, m, x.shape, out, 0)
    t.shapes[id(m)] = x.shape
    _save(t, m)
    return t.view(x, out)


def _view_backward(t: Timeline, m: nn.Module, dy: Array, input_grad: bool) -> Array | None:
    t.saved.pop(id(m), None)
    return t.view(dy, t.shapes[id(m)]) if input_grad else None


rule(nn.Flatten)((_view_forward, _view_backward))
rule(nn.Identity)((_view_forward, _view_backward))


# ---- Dropout ------------------------------------------------------------------------------------
def _dropout_forward(t: Timeline, m: nn.Dropout, x: Array) -> Array:
    if not t.training or m.p == 0.0:
        if t.phase == "forward":
            _row(t, m, x.shape, x.shape, 0)
        _save(t, m)
        return t.ref(x)
    tr = dropout_transient_bytes(x.shape, t.dtype, "forward", t.backend)
    y, mask = t.op("dropout forward", tr, x.shape, (x.shape, nbytes(x.shape, np.bool_)))
    if t.phase == "forward":
        _row(t, m, x.shape, x.shape, tr)
    _save(t, m, mask)
    t.drop(mask)
    return y


def _dropout_backward(t: Timeline, m: nn.Dropout, dy: Array, input_grad: bool) -> Array | None:
    saved = _take(t, m)
    if not input_grad:
        t.drop(*saved)
        return None
    if not saved:
        return t.ref(dy)
    dx = t.op("dropout backward", dropout_transient_bytes(dy.shape, t.dtype, "backward", t.backend), dy.shape)[0]
    t.drop(*saved)
    return dx


rule(nn.Dropout)((_dropout_forward, _dropout_backward))


# ---- containers ---------------------------------------------------------------------------------
def _children(m: nn.Module) -> list[nn.Module]:
    return m._chain() if isinstance(m, Chain) else m._children_list()


def _chain_forward(t: Timeline, m: nn.Module, x: Array) -> Array:
    t.ref(x)  # forward's own name for its argument
    for child in _children(m):
        y = forward(t, child, x)
        t.drop(x)
        x = y
    return x


def _chain_backward(t: Timeline, m: nn.Module, dy: Array, input_grad: bool) -> Array | None:
    modules = _children(m)
    t.ref(dy)
    for index in range(len(modules) - 1, -1, -1):
        dx = backward(t, modules[index], dy, input_grad or index > 0)
        t.drop(dy)
        dy = dx
    return dy


rule(Sequential)((_chain_forward, _chain_backward))
rule(Chain)((_chain_forward, _chain_backward))


# ---- residual blocks ----------------------------------------------------------------------------
def _residual_forward(t: Timeline, m: _Residual, x: Array) -> Array:
    kept = []
    out = t.ref(x)
    pairs = m._pairs()
    for index, (conv, bn) in enumerate(pairs):
        c = forward(t, conv, out)
        b = forward(t, bn, c)
        t.drop(c)
        t.drop(out)
        out = b
        if index < len(pairs) - 1:
            (r,) = t.op("relu forward", relu_transient_bytes(out.shape, t.dtype, "forward", t.backend), out.shape)
            t.drop(out)
            out = r
            kept.append(out)
            t.ref(out)
    identity = t.ref(x) if m.downsample is None else forward(t, m.downsample, x)
    (s,) = t.op("residual add", 0, out.shape)
    (y,) = t.op("relu forward", relu_transient_bytes(out.shape, t.dtype, "forward", t.backend), out.shape)
    t.drop(s)
    _save(t, m, *kept, y)
    t.drop(*kept, out, identity)
    return y


def _residual_backward(t: Timeline, m: _Residual, dy: Array, input_grad: bool) -> Array | None:
    *kept, y = _take(t, m)
    (dsum,) = t.op("relu backward", relu_transient_bytes(dy.shape, t.dtype, "backward", t.backend), dy.shape)
    d = t.ref(dsum)
    pairs = m._pairs()
    for index in range(len(pairs) - 1, -1, -1):
        conv, bn = pairs[index]
        db = backward(t, bn, d, True)
        dc = backward(t, conv, db, input_grad or index > 0)
        t.drop(db)
        t.drop(d)
        d = dc
        if index > 0:
            (r,) = t.op("relu backward", relu_transient_bytes(d.shape, t.dtype, "backward", t.backend), d.shape)
            t.drop(d)
            d = r
    d_identity = backward(t, m.downsample, dsum, input_grad) if m.downsample is not None else t.ref(dsum)
    dx = t.op("residual add backward", 0, d.shape)[0] if input_grad else None
    t.drop(*kept, y, dsum, d, d_identity)
    return dx


rule(_Residual)((_residual_forward, _residual_backward))


# ---- user modules (the fallback) -------------------------------------------------------------------
# A traced module (only forward) is replayed through its children's rules in the order a one-sample
# forward calls them, keeping every array between them until backward (as its record does); sums are
# new arrays. A module with its own backward is a leaf that allocates its output and dx and keeps
# what its _saved_spec says (by default its input and output: an estimate, marked in its row).
def _custom_forward(t: Timeline, m: nn.Module, x: Array) -> Array:
    if not m._traced():
        out = m.output_shape(x.shape)
        (y,) = t.op(f"{t.names.get(id(m))} forward", 0, out)
        if t.phase == "forward":
            _row(t, m, x.shape, out, m.workspace_bytes(x.shape, t.dtype))
            if m._is_estimated():
                t.rows[-1].name += " (estimated: custom module)"
        own, keeps_input, keeps_output = m._saved_spec(tuple(x.shape), t.dtype)
        extra = t.new((), own) if own else None
        _save(t, m, *(a for a, keep in ((x, keeps_input), (y, keeps_output), (extra, True)) if keep and a is not None))
        t.drop(extra)
        t.shapes[id(m)] = x.shape
        return y
    _, probe = m._probe(tuple(x.shape), t.dtype)
    n = x.shape[0]
    values = {id(probe.input): x}
    produced: list[Array] = []  # one reference each, the record's

    def made(shape) -> Array:
        (a,) = t.op("add", 0, shape)
        produced.append(a)
        return a

    steps = []
    for node in probe.nodes:
        ins = []
        for a in node.inputs:
            if id(a) not in values:  # a sum written with +: a new array
                values[id(a)] = made((n,) + tuple(a.shape[1:]))
            ins.append(values[id(a)])
        y = made(ins[0].shape) if node.module is None else forward(t, node.module, ins[0])
        state = None
        if node.module is not None:
            produced.append(y)
            # What the child kept, per call (a child called twice keeps two states, as the record does).
            state = [(id(c), t.saved.get(id(c))) for c in node.module.modules()]
        values[id(node.output)] = y
        steps.append((node.module, ins, y, state))
    if id(probe.output) not in values:
        values[id(probe.output)] = made((n,) + tuple(probe.output.shape[1:]))
    out = t.ref(values[id(probe.output)])
    if t.training:
        t.saved[id(m)] = (steps, t.ref(x), out, produced)
    else:
        t.drop(*produced)
    return out


def _custom_backward(t: Timeline, m: nn.Module, dy: Array, input_grad: bool) -> Array | None:
    if not m._traced():
        kept = _take(t, m)
        dx = t.op(f"{t.names.get(id(m))} backward", m.workspace_bytes(t.shapes[id(m)], t.dtype),
                  t.shapes[id(m)])[0] if input_grad else None
        for p in m.parameters():
            if p.requires_grad:
                t.grad(p)
        t.drop(*kept)
        return dx
    steps, x, out, produced = t.saved.pop(id(m))
    grads = {id(out): t.ref(dy)}
    for module, ins, y, state in reversed(steps):
        g = grads.pop(id(y), None)
        if g is None:
            continue
        for key, kept in state or ():
            if kept is not None:
                t.saved[key] = kept
        for i, a in enumerate(ins):
            d = t.ref(g) if module is None else backward(t, module, g, True)
            if id(a) in grads:
                (total,) = t.op("gradient sum", 0, a.shape)
                t.drop(grads[id(a)], d)
                d = total
            grads[id(a)] = d
            if module is not None:
                break
        t.drop(g)
    dx = grads.pop(id(x), None)
    t.drop(*grads.values())  # gradients of sums written with + (their operands are not known here)
    t.drop(*produced, x)
    if input_grad and dx is None:
        (dx,) = t.op(f"{t.names.get(id(m))} backward", 0, x.shape)
    if not input_grad:
        t.drop(dx)
        return None
    return dx


def name_modules(t: Timeline, model: nn.Module) -> None:
    """Qualified names for the report; modules that are not children (a Chain's flatten) get the
    name of the chain they run in plus their type."""
    for name, module in model.named_modules():
        t.names[id(module)] = name or type(module).__name__
    for name, module in model.named_modules():
        if isinstance(module, Chain):
            for child in module._chain():
                t.names.setdefault(id(child), f"{name + '.' if name else ''}({type(child).__name__.lower()})")
