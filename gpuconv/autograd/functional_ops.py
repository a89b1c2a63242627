"""The ops of ``gpuconv.functional`` on Tensors: each runs the op's forward on the arrays and, when it
must record, a node whose backward calls the op's existing ``*_backward`` (no new math here).

``gpuconv.functional``'s public ops dispatch here when any argument is a Tensor; on plain arrays they
stay array-in, array-out. What each node saves is exactly what its ``*_backward`` reads.

An op declared with :func:`gpuconv.functional._dispatch.autograd_form` in its own module is recorded
by :func:`record_declared` from that declaration; the functions below are the hand-written forms of
the ops that do more (in-place writes, several outputs, indices, gradients computed only where needed).
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, Callable

import numpy as np

from ..backend import get_backend


def _module(name: str):
    # By import path: gpuconv.functional's package attributes of these names are the ops themselves.
    return import_module(f"gpuconv.functional.{name}")


activation, batchnorm, channel_dropout = _module("activation"), _module("batchnorm"), _module("channel_dropout")
conv, conv_transpose, dropout_mod = _module("conv"), _module("conv_transpose"), _module("dropout")
group_norm_mod, im2col_mod = _module("group_norm"), _module("im2col")
linear_mod, loss, normalization, pool = _module("linear"), _module("loss"), _module("normalization"), _module("pool")
pad_mod = _module("pad")
arith = _module("arith")
from .graph import Node
from .ops import attach, data_of, needs_grad, wrap
from .tensor import Tensor


class OpBackward(Node):
    """The node of a functional op: ``run(node, *grads)`` calls the op's backward on what was saved."""

    __slots__ = ("label", "run", "args", "num_outputs")

    def __init__(self, label: str, run: Callable, args: Any = None, outputs: int = 1) -> None:
        super().__init__()
        self.label, self.run, self.args, self.num_outputs = label, run, args, outputs

    @property
    def name(self) -> str:
        return self.label

    def backward(self, *grads):
        return self.run(self, *grads)


def _needs(node: Node, *positions: int) -> tuple[bool, ...]:
    return tuple(node.next_edges[i] is not None for i in positions)


def _record(out: Any, label: str, run: Callable, inputs: tuple, saved: tuple = (), args: Any = None) -> Any:
    node = OpBackward(label, run, args)
    node.save(*saved)
    return attach(out, node, *inputs)


def _plain(x: Any) -> Any:
    """A non-differentiable Tensor argument (targets, running statistics, class weights) as its array."""
    return x.data if isinstance(x, Tensor) else x


# ---- declared ops -----------------------------------------------------------------------------------
def record_declared(form: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs the op ``form`` (a :class:`gpuconv.functional._dispatch.AutogradForm`) declares on the arrays
    of ``args``/``kwargs`` and, when one of its ``inputs`` requires grad, records a node that keeps
    what ``form.saves`` names and calls ``form.backward(grad, *saved, **other_args)``."""
    from ..functional._dispatch import OUTPUT, SHAPE_SUFFIX

    bound = form.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    values = bound.arguments
    y = form.forward(**{name: data_of(v) if name in form.inputs else _plain(v) for name, v in values.items()})
    inputs = tuple(values[name] for name in form.inputs)
    if not needs_grad(*inputs):
        return wrap(y)
    # Saved entries in the backward's order: None for the output (known once recorded); shapes travel
    # with the node's arguments, the rest is saved with its version.
    saved, shapes = [], {}
    for i, name in enumerate(form.saves):
        if name == OUTPUT:
            saved.append(None)
        elif name not in values and name.endswith(SHAPE_SUFFIX):
            shapes[i] = tuple(data_of(values[name[:-len(SHAPE_SUFFIX)]]).shape)
        else:
            saved.append(values[name])
    passed = {name: _plain(values[name]) for name in form.passed}

    def run(node, g):
        kept = iter(node.saved())
        operands = [shapes[i] if i in shapes else next(kept) for i in range(len(form.saves))]
        grads = form.backward(g, *operands, **passed)
        return grads if len(form.inputs) > 1 else (grads,)
    node = OpBackward(form.label, run)
    out = attach(y, node, *inputs)
    node.save(*(out if entry is None else entry for entry in saved))
    return out


# ---- convolution ----------------------------------------------------------------------------------
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, algo="auto"):
    X, W, B = data_of(x), data_of(weight), data_of(bias)
    y = conv.conv2d(X, W, B, stride, padding, dilation, groups, algo=algo)
    if not needs_grad(x, weight, bias):
        return wrap(y)

    def run(node, g):
        xs, ws = node.saved()
        stride, padding, dilation, groups, algo = node.args
        return conv.conv2d_backward(g, xs, ws, stride, padding, dilation, groups, algo=algo,
                                    needs=_needs(node, 0, 1, 2))
    return _record(y, "ConvolutionBackward", run, (x, weight, bias), (x, weight),
                   (stride, padding, dilation, groups, algo))


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *, algo="auto"):
    X, W, B = data_of(x), data_of(weight), data_of(bias)
    y = conv_transpose.conv_transpose2d(X, W, B, stride, padding, output_padding, groups, dilation, algo=algo)
    if not needs_grad(x, weight, bias):
        return wrap(y)

    def run(node, g):
        xs, ws = node.saved()
        return conv_transpose.conv_transpose2d_backward(g, xs, ws, *node.args[:-1], algo=node.args[-1],
                                                        needs=_needs(node, 0, 1, 2))
    return _record(y, "ConvolutionBackward", run, (x, weight, bias), (x, weight),
                   (stride, padding, output_padding, groups, dilation, algo))


def linear(x, weight, bias=None):
    X, W, B = data_of(x), data_of(weight), data_of(bias)
    y = linear_mod.linear(X, W, B)
    if not needs_grad(x, weight, bias):
        return wrap(y)

    def run(node, g):
        xs, ws = node.saved()
        return linear_mod.linear_backward(g, xs, ws, needs=_needs(node, 0, 1, 2))
    return _record(y, "AddmmBackward", run, (x, weight, bias), (x, weight))


# ---- activations ----------------------------------------------------------------------------------
def _sole_owner(t: Tensor, caller_refs: int) -> bool:
    """Whether nothing but ``t`` (and ``caller_refs`` references in the calling op) holds ``t``'s array:
    no view (a view references its base), no other Tensor, no saved copy in a graph node. Then giving
    ``t`` the new array is indistinguishable from writing into the old one, and saves a copy kernel.
    NOTE: CPython reference counts; ``getrefcount``'s own argument is one of them."""
    return t._base is None and sys.getrefcount(t.data) <= 2 + caller_refs


def _inplace_unary(x: Any, y: Any, label: str, run: Callable, args: Any = None, caller_refs: int = 1) -> Any:
    """Writes ``y`` into ``x`` (a Tensor or array) and, when recording, makes the op ``x``'s producer.
    ``caller_refs``: references to ``x``'s array the calling op itself holds (its local ``X``)."""
    if not isinstance(x, Tensor):
        get_backend().copy_into(x, y) if get_backend().is_native(x) else x.__setitem__(Ellipsis, y)
        return x
    recording = x._check_inplace(False)
    if _sole_owner(x, caller_refs) and y.shape == x.data.shape and y.dtype == x.data.dtype:
        x.data = y  # the in-place result without a copy: no one else can see the old memory
    else:
        get_backend().copy_into(x.data, y)
    node = None
    if recording:
        node = OpBackward(label, run, args)
    x._commit_inplace(node, ())
    if node is not None:
        node.next_edges = node.next_edges[:1]
        node.save(x)  # after the version bump: a later in-place change of the result is caught
    return x


def relu(x, inplace=False):
    X = data_of(x)
    y = activation.relu(X)

    def run(node, g):
        (ys,) = node.saved()
        return (activation.relu_backward(g, ys),)
    if inplace:
        return _inplace_unary(x, y, "ReluBackward", run)
    if not needs_grad(x):
        return wrap(y)
    node = OpBackward("ReluBackward", run)
    out = attach(y, node, x)
    node.save(out)
    return out


def leaky_relu(x, negative_slope=0.01, inplace=False):
    X = data_of(x)
    y = activation.leaky_relu(X, negative_slope)

    def run(node, g):
        (saved,) = node.saved()
        return (activation.leaky_relu_backward(g, saved, node.args),)
    if inplace:
        if negative_slope <= 0 and isinstance(x, Tensor) and needs_grad(x):
            raise RuntimeError("In-place leakyReLu backward calculation is triggered with a non-positive slope "
                               "which is not supported. Use inplace=False or a positive negative_slope.")
        return _inplace_unary(x, y, "LeakyReluBackward", run, negative_slope)
    if not needs_grad(x):
        return wrap(y)
    return _record(y, "LeakyReluBackward", run, (x,), (x,), negative_slope)


def add(a, b):
    from . import ops
    A, B = data_of(a), data_of(b)
    y = arith.add(A, B)
    if not needs_grad(a, b):
        return wrap(y)
    node = ops.AddBackward()
    node.shapes, node.alpha = (tuple(A.shape), tuple(B.shape)), 1
    return attach(y, node, a, b)


# ---- dropout ----------------------------------------------------------------------------------------
def _dropout(forward: Callable, backward: Callable, label: str, x, p, training, generator, return_mask, inplace):
    X = data_of(x)
    if not training or p == 0.0:
        y = forward(X, p, training=False)
        out = x if isinstance(x, Tensor) and inplace else wrap(y) if not isinstance(x, Tensor) else x
        return (out, None) if return_mask else out
    y, mask = forward(X, p, training=True, generator=generator, return_mask=True)

    def run(node, g):
        (m,) = node.saved()
        return (backward(g, m, node.args),)
    if inplace:
        out = _inplace_unary(x, y, label, run, p)
        if out.grad_fn is not None and isinstance(out.grad_fn, OpBackward):
            out.grad_fn.save(mask)
    elif needs_grad(x):
        out = _record(y, label, run, (x,), (mask,), p)
    else:
        out = wrap(y)
    return (out, wrap(mask)) if return_mask else out


def dropout(x, p=0.5, training=True, inplace=False, *, generator=None, return_mask=False):
    return _dropout(dropout_mod.dropout, dropout_mod.dropout_backward, "NativeDropoutBackward", x, p, training,
                    generator, return_mask, inplace)


def dropout2d(x, p=0.5, training=True, inplace=False, *, generator=None, return_mask=False):
    return _dropout(channel_dropout.dropout2d, channel_dropout.dropout2d_backward, "Dropout2dBackward", x, p, training,
                    generator, return_mask, inplace)


# ---- normalization ----------------------------------------------------------------------------------
def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5, *,
               num_batches_tracked=None, return_stats=False):
    X, W, B = data_of(x), data_of(weight), data_of(bias)
    # NOTE: the array op wants C-contiguous vectors (it checks them as it checks the running statistics,
    # which it updates in place); weight and bias are only read: a strided one (a slice, a view of a
    # parameter) is copied, and that copy is saved (its values cannot change before backward).
    be = get_backend()
    saved_weight = weight
    if W is not None and not W.flags.c_contiguous:
        W = saved_weight = be.contiguous(W)
    if B is not None and not B.flags.c_contiguous:
        B = be.contiguous(B)
    record = needs_grad(x, weight, bias)
    out = batchnorm.batch_norm(X, _plain(running_mean), _plain(running_var), W, B, training=training,
                               momentum=momentum, eps=eps, num_batches_tracked=num_batches_tracked,
                               return_stats=record or return_stats)
    if not record:
        return tuple(wrap(o) for o in out) if return_stats else wrap(out)
    y, mean, invstd = out

    def run(node, g):
        xs, ws, m, s = node.saved()
        return batchnorm.batch_norm_backward(g, xs, ws, m, s, training=node.args, needs=_needs(node, 0, 1, 2))
    result = _record(y, "NativeBatchNormBackward", run, (x, weight, bias), (x, saved_weight, mean, invstd),
                     bool(training))
    return (result, wrap(mean), wrap(invstd)) if return_stats else result


def _normalization(forward: Callable, backward: Callable, label: str, x, shape_arg, weight, bias, eps,
                   return_stats: bool):
    """layer_norm and group_norm: ``forward(X, shape_arg, W, B, eps, return_stats=...)`` gives (y, mean,
    invstd) and ``backward(g, x, shape_arg, w, mean, invstd, needs=...)`` the three gradients."""
    X, W, B = data_of(x), data_of(weight), data_of(bias)
    record = needs_grad(x, weight, bias)
    out = forward(X, shape_arg, W, B, eps, return_stats=record or return_stats)
    if not record:
        return tuple(wrap(o) for o in out) if return_stats else wrap(out)
    y, mean, invstd = out

    def run(node, g):
        xs, ws, m, s = node.saved()
        return backward(g, xs, node.args, ws, m, s, needs=_needs(node, 0, 1, 2))
    result = _record(y, label, run, (x, weight, bias), (x, weight, mean, invstd), shape_arg)
    return (result, wrap(mean), wrap(invstd)) if return_stats else result


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False):
    return _normalization(normalization.layer_norm, normalization.layer_norm_backward, "NativeLayerNormBackward", x,
                          normalized_shape, weight, bias, eps, return_stats)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, return_stats=False):
    return _normalization(group_norm_mod.group_norm, group_norm_mod.group_norm_backward, "NativeGroupNormBackward", x,
                          num_groups, weight, bias, eps, return_stats)


# ---- pooling ----------------------------------------------------------------------------------------
def _fits_int32(shape: tuple[int, ...]) -> bool:
    """Whether every flat index within one (H, W) plane fits int32 (the kept indices are then int32)."""
    return int(shape[-1]) * int(shape[-2]) < 2**31


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               index_dtype=np.int64):
    X = data_of(x)
    args = (kernel_size, stride, padding, dilation, ceil_mode)
    record = needs_grad(x)
    if not record:
        out = pool.max_pool2d(X, *args, return_indices=return_indices, index_dtype=index_dtype)
        return (wrap(out[0]), wrap(out[1])) if return_indices else wrap(out)
    kept_dtype = index_dtype if return_indices else (np.int32 if _fits_int32(X.shape) else np.int64)
    y, indices = pool.max_pool2d(X, *args, return_indices=True, index_dtype=kept_dtype)

    def run(node, g):
        # The indices are the forward's own, saved under autograd's version check: not checked again.
        xs, idx = node.saved()
        return (pool.max_pool2d_backward(g, xs, idx, *node.args, check_indices=False),)
    result = _record(y, "MaxPool2DWithIndicesBackward", run, (x,), (x, indices), args)
    return (result, wrap(indices)) if return_indices else result


def adaptive_max_pool2d(x, output_size, return_indices=False, *, index_dtype=np.int64):
    X = data_of(x)
    if not needs_grad(x):
        out = pool.adaptive_max_pool2d(X, output_size, return_indices=return_indices, index_dtype=index_dtype)
        return (wrap(out[0]), wrap(out[1])) if return_indices else wrap(out)
    y, indices = pool.adaptive_max_pool2d(X, output_size, return_indices=True, index_dtype=index_dtype)

    def run(node, g):
        xs, idx = node.saved()
        return (pool.adaptive_max_pool2d_backward(g, xs, idx, node.args),)
    result = _record(y, "AdaptiveMaxPool2DBackward", run, (x,), (x, indices), output_size)
    return (result, wrap(indices)) if return_indices else result


def gem(x, p=3.0, eps=1e-6, kernel_size=None, stride=None):
    X, P = data_of(x), data_of(p)
    y = pool.gem(X, P, eps, kernel_size, stride)
    if not needs_grad(x, p):
        return wrap(y)

    def run(node, g):
        xs, ps = node.saved()
        dx, dp = pool.gem_backward(g, xs, ps, *node.args, needs=_needs(node, 0, 1))
        return dx, dp
    return _record(y, "GemBackward", run, (x, p), (x, p), (eps, kernel_size, stride))


# ---- resampling, padding and columns ------------------------------------------------------------------
def pad(x, pad, mode="constant", value=0.0):
    X = data_of(x)
    y = pad_mod.pad(X, pad, mode, value)
    if not needs_grad(x):
        return wrap(y)

    def run(node, g):
        amounts, how = node.args
        return (pad_mod.pad_backward(g, amounts, how),)
    return _record(y, "PadBackward", run, (x,), (), (tuple(pad), mode))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    X = data_of(input)
    y = im2col_mod.unfold(X, kernel_size, dilation, padding, stride)
    if not needs_grad(input):
        return wrap(y)

    def run(node, g):
        shape, rest = node.args
        return (im2col_mod.fold(g, shape[-2:], *rest),)
    return _record(y, "Im2ColBackward", run, (input,), (), (tuple(X.shape), (kernel_size, dilation, padding, stride)))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    X = data_of(input)
    y = im2col_mod.fold(X, output_size, kernel_size, dilation, padding, stride)
    if not needs_grad(input):
        return wrap(y)

    def run(node, g):
        dcols = im2col_mod.unfold(g, *node.args)
        return (dcols,)
    return _record(y, "Col2ImBackward", run, (input,), (), (kernel_size, dilation, padding, stride))


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, layout="nkl"):
    X = data_of(x)
    y = im2col_mod.im2col(X, kernel_size, stride, padding, dilation, layout=layout)
    if not needs_grad(x):
        return wrap(y)

    def run(node, g):
        shape, rest, lay = node.args
        return (im2col_mod.im2col_backward(g, shape, *rest, layout=lay),)
    return _record(y, "Im2ColBackward", run, (x,), (), (tuple(X.shape), (kernel_size, stride, padding, dilation), layout))


def col2im(cols, output_size, kernel_size, stride=1, padding=0, dilation=1, *, layout="nkl"):
    C = data_of(cols)
    y = im2col_mod.col2im(C, output_size, kernel_size, stride, padding, dilation, layout=layout)
    if not needs_grad(cols):
        return wrap(y)

    def run(node, g):
        rest, lay = node.args
        return (im2col_mod.col2im_backward(g, *rest, layout=lay),)
    return _record(y, "Col2ImBackward", run, (cols,), (), ((kernel_size, stride, padding, dilation), layout))


# ---- losses -----------------------------------------------------------------------------------------
def _target_grad_refused(name: str, target: Any) -> None:
    if needs_grad(target):
        raise RuntimeError(f"{name}: the derivative for 'target' is not implemented (pass target.detach())")


def _loss(name: str, forward: Callable, backward: Callable, input: Any, target: Any, kwargs: dict,
          target_grad: bool = False) -> Any:
    if not target_grad:
        _target_grad_refused(name, target)
    kwargs = {k: _plain(v) for k, v in kwargs.items()}
    I, T = data_of(input), data_of(target)
    y = forward(I, T, **kwargs)
    if not needs_grad(input, target):
        return wrap(y)

    def run(node, g):
        xs, ts = node.saved()
        dinput = backward(g, xs, ts, **node.args)
        dtarget = -dinput if node.next_edges[1] is not None else None
        return (dinput if node.next_edges[0] is not None else None), dtarget
    label = "".join(part.capitalize() for part in name.split("_")) + "Backward"
    return _record(y, label, run, (input, target), (input, T), kwargs)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return _loss("cross_entropy", loss.cross_entropy, loss.cross_entropy_backward, input, target,
                 dict(weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing))


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return _loss("nll_loss", loss.nll_loss, loss.nll_loss_backward, input, target,
                 dict(weight=weight, ignore_index=ignore_index, reduction=reduction))


def mse_loss(input, target, reduction="mean"):
    return _loss("mse_loss", loss.mse_loss, loss.mse_loss_backward, input, target, dict(reduction=reduction),
                 target_grad=True)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    return _loss("smooth_l1_loss", loss.smooth_l1_loss, loss.smooth_l1_loss_backward, input, target,
                 dict(reduction=reduction, beta=beta), target_grad=True)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    return _loss("binary_cross_entropy", loss.binary_cross_entropy, loss.binary_cross_entropy_backward, input, target,
                 dict(weight=weight, reduction=reduction))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    return _loss("binary_cross_entropy_with_logits", loss.binary_cross_entropy_with_logits,
                 loss.binary_cross_entropy_with_logits_backward, input, target,
                 dict(weight=weight, reduction=reduction, pos_weight=pos_weight))
