"""Losses: CrossEntropyLoss, NLLLoss, MSELoss, BCELoss, BCEWithLogitsLoss, SmoothL1Loss
(``loss = crit(logits, y)``, then ``dlogits = crit.backward()``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..backend import get_backend
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def _dloss(self, loss_shape: tuple[int, ...], dtype: Any, dloss: Any) -> Any:
        if dloss is not None:
            return dloss
        if loss_shape == ():
            return 1.0
        be = get_backend()
        return be.fill_(be.empty(loss_shape, dtype), 1)

    def backward(self, dloss: Any = None) -> Any:
        """Gradient of the loss with respect to the forward's ``input`` (the logits).

        Args:
            dloss: gradient with respect to the loss (default 1: the loss itself is minimized).
        """
        return self._backward(dloss, True)


class CrossEntropyLoss(_Loss):
    """Softmax cross entropy between logits (N, C) or (N, C, d...) and class indices (N,) / (N, d...)
    or class probabilities of the logits' shape, PyTorch's ``nn.CrossEntropyLoss``.

    Keeps for backward: the logits and the target, prod(logits.shape)*itemsize + 8*prod(target.shape)
    bytes for int64 class indices.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def _kwargs(self) -> dict:
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)

    def forward(self, input: Any, target: Any) -> Any:
        loss = F.cross_entropy(input, target, **self._kwargs())
        self._save(input, target, tuple(loss.shape))
        return loss

    def _backward(self, dloss: Any, input_grad: bool) -> Any:
        logits, target, loss_shape = self._take_saved()
        return F.cross_entropy_backward(self._dloss(loss_shape, logits.dtype, dloss), logits, target, **self._kwargs())

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else (input_shape[0],) + tuple(input_shape[2:])

    def _saved_spec(self, input_shape, dtype):
        # Besides the logits, the target (int64 class indices, one per logits row) is kept.
        target_shape = (input_shape[0],) + tuple(input_shape[2:])
        return int(np.prod(target_shape, dtype=np.int64)) * 8, True, False

    def extra_repr(self) -> str:
        return ""


class MSELoss(_Loss):
    """Mean squared error, PyTorch's ``nn.MSELoss``. Keeps for backward: input and target,
    2*prod(shape)*itemsize bytes."""

    def forward(self, input: Any, target: Any) -> Any:
        loss = F.mse_loss(input, target, reduction=self.reduction)
        self._save(input, target, tuple(loss.shape))
        return loss

    def _backward(self, dloss: Any, input_grad: bool) -> Any:
        input, target, loss_shape = self._take_saved()
        return F.mse_loss_backward(self._dloss(loss_shape, input.dtype, dloss), input, target, reduction=self.reduction)

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else tuple(input_shape)

    def _saved_spec(self, input_shape, dtype):
        return int(np.prod(input_shape)) * np.dtype(dtype).itemsize, True, False


class NLLLoss(_Loss):
    """Negative log likelihood of class indices under log-probabilities (N, C) or (N, C, d...)
    (a LogSoftmax output), PyTorch's ``nn.NLLLoss``; arguments as :class:`CrossEntropyLoss`.

    Keeps for backward: the input and the target.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = int(ignore_index)

    def _kwargs(self) -> dict:
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)

    def forward(self, input: Any, target: Any) -> Any:
        loss = F.nll_loss(input, target, **self._kwargs())
        self._save(input, target, tuple(loss.shape))
        return loss

    def _backward(self, dloss: Any, input_grad: bool) -> Any:
        input, target, loss_shape = self._take_saved()
        return F.nll_loss_backward(self._dloss(loss_shape, input.dtype, dloss), input, target, **self._kwargs())

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else (input_shape[0],) + tuple(input_shape[2:])

    def _saved_spec(self, input_shape, dtype):
        target_shape = (input_shape[0],) + tuple(input_shape[2:])
        return int(np.prod(target_shape, dtype=np.int64)) * 8, True, False


class _ElementwiseLoss(_Loss):
    """A loss over input and a target of the same shape; keeps both for backward."""

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else tuple(input_shape)

    def _saved_spec(self, input_shape, dtype):
        return int(np.prod(input_shape, dtype=np.int64)) * np.dtype(dtype).itemsize, True, False

    def _functional(self) -> tuple[Any, Any, dict]:
        raise NotImplementedError

    def forward(self, input: Any, target: Any) -> Any:
        forward, _, kwargs = self._functional()
        loss = forward(input, target, **kwargs)
        self._save(input, target, tuple(loss.shape))
        return loss

    def _backward(self, dloss: Any, input_grad: bool) -> Any:
        input, target, loss_shape = self._take_saved()
        _, backward, kwargs = self._functional()
        return backward(self._dloss(loss_shape, input.dtype, dloss), input, target, **kwargs)


class BCELoss(_ElementwiseLoss):
    """Binary cross entropy on probabilities in [0, 1] (a Sigmoid output), PyTorch's ``nn.BCELoss``;
    ``weight`` (broadcastable to the input) rescales each element. Prefer :class:`BCEWithLogitsLoss`
    on logits: it is stable. Keeps for backward: input and target."""

    def __init__(self, weight: Any = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)

    def _functional(self):
        return F.binary_cross_entropy, F.binary_cross_entropy_backward, dict(weight=self.weight,
                                                                             reduction=self.reduction)


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Sigmoid plus binary cross entropy on logits, stable for large |logits|, PyTorch's
    ``nn.BCEWithLogitsLoss``; ``weight`` rescales each element, ``pos_weight`` (e.g. (C,)) the
    positive term. Keeps for backward: input and target."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def _functional(self):
        return (F.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits_backward,
                dict(weight=self.weight, reduction=self.reduction, pos_weight=self.pos_weight))


class SmoothL1Loss(_ElementwiseLoss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target), PyTorch's
    ``nn.SmoothL1Loss``. Keeps for backward: input and target."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if not isinstance(beta, (int, float, np.floating)) or isinstance(beta, bool) or beta < 0:
            raise ValueError(f"beta must be a non-negative number, got {beta!r}")
        self.beta = float(beta)

    def _functional(self):
        return F.smooth_l1_loss, F.smooth_l1_loss_backward, dict(reduction=self.reduction, beta=self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}" if self.beta != 1.0 else ""
