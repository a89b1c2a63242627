"""Losses, forward and backward: cross entropy and NLL over integer class targets, mean squared
error, binary cross entropy (on probabilities and on logits), smooth L1.

Semantics are PyTorch's, including class weights (the mean divides by the summed weights of the
non-ignored targets), label smoothing and ignore_index.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..backend import get_backend
from ._args import check_array, same_dtype
from ._common import check_real, check_reduction, check_same_shape, scalar_grad
from ._memory import capabilities, check_request, nbytes
from ._dispatch import recorded


class LossPrimitives(Protocol):
    """The loss primitives of the backend contract (gpuconv/backend/base.py): cross entropy over
    integer class targets, and the training loop's running sums (gpuconv/train.py)."""

    def cross_entropy(self, logits: Any, target: Any, weight: Any, ignore_index: int, reduction: str,
                      label_smoothing: float) -> Any:
        """The loss (0-D for mean/sum, target-shaped for none) of validated arguments."""

    def cross_entropy_backward(self, dloss: Any, logits: Any, target: Any, weight: Any, ignore_index: int,
                               reduction: str, label_smoothing: float) -> Any:
        """dlogits of logits' shape and dtype."""

    def first_bad_target(self, target: Any, classes: int, ignore_index: int) -> int:
        """The flat position of the first target outside [0, classes) that is not ignore_index, or -1."""

    def accumulate_loss(self, total: Any, loss: Any, scale: float) -> None:
        """total += loss * scale on the device (no host sync per step)."""

    def count_correct(self, outputs: Any, target: Any, count: Any) -> None:
        """count += the number of rows whose arg-max equals the target, on the device."""


def _rows(a: Any) -> Any:
    """(N, C, d1, ...) -> (N*d1*..., C): one row of class scores per target."""
    if a.ndim == 1:
        return a.reshape(1, -1)
    return get_backend().xp.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _unrows(rows: Any, shape: tuple[int, ...]) -> Any:
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return get_backend().xp.ascontiguousarray(get_backend().xp.moveaxis(moved, -1, 1))


def _check_cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing, name="logits"):
    check_array(logits, name)
    if logits.ndim < 1:
        raise ValueError(f"{name} must be (C,), (N, C) or (N, C, d1, ...), got a 0-D array")
    be = get_backend()
    be.check_native("target", target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    expected = () if logits.ndim == 1 else (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target must have shape {expected} for {name} of shape {tuple(logits.shape)}, "
                         f"got {tuple(target.shape)}")
    classes = logits.shape[0 if logits.ndim == 1 else 1]
    if classes < 1:
        raise ValueError(f"{name} must have at least one class (C >= 1), got shape {tuple(logits.shape)}")
    if weight is not None:
        check_array(weight, "weight", 1, "(C,)")
        same_dtype(name, logits, weight=weight)
        if weight.shape[0] != classes:
            raise ValueError(f"weight must have shape ({classes},) (one per class), got {tuple(weight.shape)}")
    if not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    check_reduction(reduction)
    smoothing = check_real(label_smoothing, "label_smoothing")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    bad = be.first_bad_target(target, classes, int(ignore_index))  # reads one number back (a sync)
    if bad >= 0:
        first = int(target.reshape(-1)[bad])
        raise ValueError(f"target values must be in [0, {classes - 1}] (C = {classes}) or equal ignore_index "
                         f"{ignore_index}; got {first}")
    return classes, smoothing


def _flat_targets(target, ignore_index):
    """(targets as a flat int64 array, mask of the ignored ones)."""
    flat = target.reshape(-1).astype(np.int64)
    return flat, flat == int(ignore_index)


def _target_weights(flat, ignored, weight, dtype):
    """Per-target weight: weight[target] (1 without weights), 0 for ignored targets."""
    xp = get_backend().xp
    safe = xp.where(ignored, 0, flat)
    w = weight[safe] if weight is not None else xp.ones(flat.shape, dtype=dtype)
    return xp.where(ignored, w.dtype.type(0), w), safe


def _target_scale(dloss, target, flat, ignored, weight, reduction, dtype):
    """(scale, target weights, safe targets) of the NLL backward: ``dloss`` per target ("none",
    checked against target's shape) or as a scalar, divided by the summed weights of the
    non-ignored targets for "mean"."""
    scale = _dloss_for(dloss, target, reduction, dtype).reshape(-1)
    wt, safe = _target_weights(flat, ignored, weight, dtype)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = scale / wt.sum()
    return scale, wt, safe


def cross_entropy(logits: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Any:
    """Cross entropy between ``logits`` (unnormalized class scores) and integer class targets.

    Args:
        logits: (N, C), (N, C, d1, ...) with the class dimension 1, or (C,) for one sample.
        target: integer array (N,), (N, d1, ...) or () with values in [0, C) or equal ``ignore_index``.
        weight: (C,) class weights or None.
        ignore_index: targets with this value contribute nothing (nor to the mean's denominator).
        reduction: ``"mean"`` (divided by the summed weights of the non-ignored targets),
            ``"sum"`` or ``"none"`` (per-target losses with target's shape).
        label_smoothing: epsilon in [0, 1]; the target distribution becomes
            (1 - epsilon) * one_hot + epsilon / C.
    Returns:
        A 0-D array (mean, sum) or target-shaped array (none), logits' dtype.
    """
    _, eps = _check_cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing)
    be = get_backend()
    # NOTE: only the numpy backend holds log-probabilities of the logits' size; the kernels keep two
    # values per row.
    kernels = be.capabilities.kernels
    check_request("cross_entropy", (0 if kernels else nbytes(logits.shape, logits.dtype))
                  + cross_entropy_transient_bytes(logits.shape, logits.dtype, "forward", be),
                  "the per-row losses and weights" if kernels
                  else "the log-probabilities and log-softmax's temporaries")
    return be.cross_entropy(logits, target, weight, int(ignore_index), reduction, eps)


def cross_entropy_backward(dloss: Any, logits: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                           reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """Gradient of :func:`cross_entropy` with respect to ``logits``.

    Args:
        dloss: the loss's gradient: a scalar or 0-D array (mean, sum), or target-shaped (none).
        logits, target, weight, ignore_index, reduction, label_smoothing: as in the forward.
    Returns:
        dlogits with logits' shape and dtype.
    """
    _, eps = _check_cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing)
    be = get_backend()
    check_request("cross_entropy_backward", nbytes(logits.shape, logits.dtype)
                  + cross_entropy_transient_bytes(logits.shape, logits.dtype, "backward", be),
                  "dlogits and the one-hot weights, probabilities and products")
    return be.cross_entropy_backward(_dloss_for(dloss, target, reduction, logits.dtype), logits, target, weight,
                                     int(ignore_index), reduction, eps)


def _dloss_for(dloss: Any, target: Any, reduction: str, dtype: Any) -> Any:
    """dloss checked: target-shaped for reduction="none", else a 0-D array; of ``dtype``."""
    if reduction == "none":
        check_array(dloss, "dloss")
        if tuple(dloss.shape) != tuple(target.shape):
            raise ValueError(f"dloss must have target's shape {tuple(target.shape)} for reduction='none', "
                             f"got {tuple(dloss.shape)}")
        return dloss.astype(dtype, copy=False)
    return scalar_grad(dloss, reduction, dtype)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """(input - target)^2, reduced by ``reduction`` ("mean", "sum" or "none"). Same shapes required."""
    check_array(input, "input")
    check_same_shape("input", input, "target", target)
    check_reduction(reduction)
    check_request("mse_loss", nbytes(input.shape, input.dtype), "the elementwise losses")
    xp = get_backend().xp
    diff = input - target
    sq = diff * diff
    if reduction == "none":
        return sq
    return xp.asarray(sq.sum() if reduction == "sum" else sq.mean(), dtype=input.dtype)


def mse_loss_backward(dloss: Any, input: Any, target: Any, reduction: str = "mean") -> Any:
    """dinput = 2 (input - target) dloss (divided by input.size for "mean"); dloss input-shaped for "none"."""
    check_array(input, "input")
    check_same_shape("input", input, "target", target)
    check_reduction(reduction)
    check_request("mse_loss_backward", nbytes(input.shape, input.dtype), "the result")
    if reduction == "none":
        check_same_shape("input", input, "dloss", dloss)
        return 2 * (input - target) * dloss
    scale = scalar_grad(dloss, reduction, input.dtype)
    if reduction == "mean":
        scale = scale / input.dtype.type(max(input.size, 1))
    return (2 * (input - target) * scale).astype(input.dtype, copy=False)


# ---- NLLLoss, BCELoss, BCEWithLogitsLoss, SmoothL1Loss ---------------------------------------------------------

def _reduce(losses: Any, reduction: str, dtype: Any) -> Any:
    xp = get_backend().xp
    if reduction == "none":
        return losses
    return xp.asarray(losses.sum() if reduction == "sum" else losses.mean(), dtype=dtype)


def _loss_scale(dloss: Any, reduction: str, input: Any, reference_name: str = "input") -> Any:
    """dloss as an array broadcastable to ``input``: input-shaped for "none", else a scalar (divided
    by input.size for "mean")."""
    if reduction == "none":
        check_same_shape(reference_name, input, "dloss", dloss)
        return dloss
    scale = scalar_grad(dloss, reduction, input.dtype)
    if reduction == "mean":
        scale = scale / input.dtype.type(max(input.size, 1))
    return scale


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> Any:
    """Negative log likelihood of class ``target`` under log-probabilities ``input`` (a
    ``log_softmax`` output), PyTorch's ``nll_loss``: -weight[t] * input[t] per target.

    Args:
        input: (N, C), (N, C, d1, ...) or (C,) log-probabilities.
        target, weight, ignore_index, reduction: as in :func:`cross_entropy` ("mean" divides by the
            summed weights of the non-ignored targets).
    Returns:
        A 0-D array (mean, sum) or target-shaped array (none), input's dtype.
    """
    _check_cross_entropy(input, target, weight, ignore_index, reduction, 0.0, name="input")
    flat, ignored = _flat_targets(target, ignore_index)
    xp = get_backend().xp
    wt, safe = _target_weights(flat, ignored, weight, input.dtype)
    picked = xp.take_along_axis(_rows(input), safe[:, None], axis=1)[:, 0]
    losses = (-wt * picked).astype(input.dtype, copy=False)
    if reduction == "none":
        return losses.reshape(target.shape)
    if reduction == "sum":
        return xp.asarray(losses.sum(), dtype=input.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        # NOTE: every target ignored gives 0/0 = NaN, as in PyTorch.
        return xp.asarray(losses.sum() / wt.sum(), dtype=input.dtype)


def nll_loss_backward(dloss: Any, input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                      reduction: str = "mean") -> Any:
    """Gradient of :func:`nll_loss` with respect to ``input``: -weight[t] * dloss at each target's
    class, zero elsewhere and for ignored targets. ``dloss``: scalar, or target-shaped for "none"."""
    classes, _ = _check_cross_entropy(input, target, weight, ignore_index, reduction, 0.0, name="input")
    flat, ignored = _flat_targets(target, ignore_index)
    check_request("nll_loss_backward", nbytes(input.shape, input.dtype), "the result")
    xp = get_backend().xp
    dtype = input.dtype
    scale, wt, safe = _target_scale(dloss, target, flat, ignored, weight, reduction, dtype)
    rows = flat.shape[0]
    grad = xp.zeros((rows, classes), dtype=dtype)
    with np.errstate(invalid="ignore"):
        values = -wt * scale
    grad[xp.arange(rows), safe] = xp.where(ignored, dtype.type(0), values).astype(dtype, copy=False)
    return _unrows(grad, tuple(input.shape))


def _check_binary(input: Any, target: Any, weight: Any, reduction: str, pos_weight: Any = None) -> None:
    check_array(input, "input")
    check_same_shape("input", input, "target", target)
    check_reduction(reduction)
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            continue
        check_array(value, name)
        same_dtype("input", input, **{name: value})
        try:
            np.broadcast_shapes(tuple(value.shape), tuple(input.shape))
        except ValueError:
            raise ValueError(f"{name} of shape {tuple(value.shape)} does not broadcast to input's shape "
                             f"{tuple(input.shape)}") from None


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Any:
    """-weight * (target * log(input) + (1 - target) * log(1 - input)), each log clamped at -100 as
    in PyTorch, so that input 0 or 1 gives a finite loss.

    Args:
        input: probabilities in [0, 1], any shape; target: same shape (values in [0, 1]).
        weight: broadcastable to input, or None. reduction: "mean", "sum" or "none".
    Raises:
        ValueError when an input value is outside [0, 1] (e.g. logits: use
        :func:`binary_cross_entropy_with_logits`).
    """
    _check_binary(input, target, weight, reduction)
    check_request("binary_cross_entropy", nbytes(input.shape, input.dtype), "the elementwise losses")
    xp = get_backend().xp
    if input.size and bool(((input < 0) | (input > 1)).any()):
        raise ValueError("input of binary_cross_entropy must hold probabilities in [0, 1]; for logits use "
                         "binary_cross_entropy_with_logits (BCEWithLogitsLoss)")
    floor = input.dtype.type(-100)
    with np.errstate(divide="ignore"):
        log_p = xp.maximum(xp.log(input), floor)
        log_q = xp.maximum(xp.log1p(-input), floor)
    losses = -(target * log_p + (1 - target) * log_q)
    if weight is not None:
        losses = losses * weight
    return _reduce(losses.astype(input.dtype, copy=False), reduction, input.dtype)


def binary_cross_entropy_backward(dloss: Any, input: Any, target: Any, weight: Any = None,
                                  reduction: str = "mean") -> Any:
    """dinput = dloss * weight * (input - target) / max(input * (1 - input), 1e-12), PyTorch's formula."""
    _check_binary(input, target, weight, reduction)
    check_request("binary_cross_entropy_backward", nbytes(input.shape, input.dtype), "the result")
    xp = get_backend().xp
    scale = _loss_scale(dloss, reduction, input)
    grad = (input - target) / xp.maximum(input * (1 - input), input.dtype.type(1e-12)) * scale
    if weight is not None:
        grad = grad * weight
    return grad.astype(input.dtype, copy=False)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Any:
    """Sigmoid and binary cross entropy in one stable expression, PyTorch's
    ``binary_cross_entropy_with_logits``: -weight * (pos_weight * target * log(sigmoid(input))
    + (1 - target) * log(1 - sigmoid(input))).

    Args:
        input: logits, any shape; target: same shape, values in [0, 1].
        weight: broadcastable to input; pos_weight: weight of the positive term, broadcastable
            to input (one per class along the last axis, e.g. (C,)).
        reduction: "mean", "sum" or "none".
    """
    _check_binary(input, target, weight, reduction, pos_weight)
    check_request("binary_cross_entropy_with_logits", nbytes(input.shape, input.dtype), "the elementwise losses")
    xp = get_backend().xp
    # log(1 + exp(-|x|)) + max(-x, 0) = -log(sigmoid(x)), without overflow.
    neg_log_sigmoid = xp.log1p(xp.exp(-xp.abs(input))) + xp.maximum(-input, 0)
    log_weight = 1 if pos_weight is None else (pos_weight - 1) * target + 1
    losses = (1 - target) * input + log_weight * neg_log_sigmoid
    if weight is not None:
        losses = losses * weight
    return _reduce(losses.astype(input.dtype, copy=False), reduction, input.dtype)


def binary_cross_entropy_with_logits_backward(dloss: Any, input: Any, target: Any, weight: Any = None,
                                              reduction: str = "mean", pos_weight: Any = None) -> Any:
    """dinput = dloss * weight * (sigmoid(input) * (pos_weight * target + 1 - target) - pos_weight * target)."""
    _check_binary(input, target, weight, reduction, pos_weight)
    check_request("binary_cross_entropy_with_logits_backward", nbytes(input.shape, input.dtype), "the result")
    xp = get_backend().xp
    scale = _loss_scale(dloss, reduction, input)
    e = xp.exp(-xp.abs(input))
    sig = xp.where(input >= 0, 1 / (1 + e), e / (1 + e))
    if pos_weight is None:
        grad = sig - target
    else:
        grad = sig * ((pos_weight - 1) * target + 1) - pos_weight * target
    grad = grad * scale
    if weight is not None:
        grad = grad * weight
    return grad.astype(input.dtype, copy=False)


def _check_beta(beta: Any) -> float:
    beta = check_real(beta, "beta")
    if beta < 0:
        raise ValueError(f"beta must be non-negative, got {beta}")
    return beta


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Any:
    """Huber-like loss of d = input - target: 0.5 * d^2 / beta where |d| < beta, else |d| - 0.5 * beta
    (beta = 0 is the L1 loss), PyTorch's ``smooth_l1_loss``. Same shapes required."""
    check_array(input, "input")
    check_same_shape("input", input, "target", target)
    check_reduction(reduction)
    beta = _check_beta(beta)
    check_request("smooth_l1_loss", nbytes(input.shape, input.dtype), "the elementwise losses")
    xp = get_backend().xp
    d = xp.abs(input - target)
    if beta == 0.0:
        losses = d
    else:
        losses = xp.where(d < beta, 0.5 * d * d / input.dtype.type(beta), d - input.dtype.type(0.5 * beta))
    return _reduce(losses.astype(input.dtype, copy=False), reduction, input.dtype)


def smooth_l1_loss_backward(dloss: Any, input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Any:
    """dinput = dloss * (d / beta where |d| < beta, else sign(d)), d = input - target."""
    check_array(input, "input")
    check_same_shape("input", input, "target", target)
    check_reduction(reduction)
    beta = _check_beta(beta)
    check_request("smooth_l1_loss_backward", nbytes(input.shape, input.dtype), "the result")
    xp = get_backend().xp
    scale = _loss_scale(dloss, reduction, input)
    d = input - target
    if beta == 0.0:
        grad = xp.sign(d)
    else:
        grad = xp.where(xp.abs(d) < beta, d / input.dtype.type(beta), xp.sign(d))
    return (grad * scale).astype(input.dtype, copy=False)


def cross_entropy_transient_bytes(logits_shape: tuple[int, ...], dtype: Any, direction: str,
                                  backend: Any = "numpy") -> int:
    """Bytes :func:`cross_entropy` (``direction="forward"``) or :func:`cross_entropy_backward`
    (``"backward"``) allocates above its result at its peak, for logits of ``logits_shape`` and
    int32 or int64 targets.

    numpy: the forward's log-softmax holds two of the shifted logits, their exponentials and the
    log-probabilities at a time (2 arrays of the logits' size) next to int64 copies of the target;
    the backward holds the one-hot weights, their scaled negation, the probabilities and the
    products (4 arrays of the logits' size besides dlogits). Kernel backends (cupy, emulated): the
    forward's per-row losses and weights (2 values per row), the backward's one-element scale, and
    the 8-byte result of the target check.
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    shape = tuple(int(v) for v in logits_shape)
    elements = int(np.prod(shape, dtype=np.int64))
    rows = elements // (shape[0] if len(shape) == 1 else shape[1])
    itemsize = np.dtype(dtype).itemsize
    if capabilities(backend).kernels:
        return 8 + (2 * rows * itemsize if direction == "forward" else itemsize)
    arrays = 2 if direction == "forward" else 4
    return arrays * elements * itemsize + 3 * rows * 8


__all__ = ["binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_backward", "cross_entropy", "cross_entropy_backward", "mse_loss",
           "mse_loss_backward", "nll_loss", "nll_loss_backward", "smooth_l1_loss", "smooth_l1_loss_backward"]
recorded("binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "nll_loss",
         "smooth_l1_loss")
