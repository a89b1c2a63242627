"""Losses: CrossEntropyLoss, NLLLoss, MSELoss, BCELoss, BCEWithLogitsLoss, SmoothL1Loss
(``loss = crit(logits, y)``, then ``loss.backward()``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction


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
        return loss

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else (input_shape[0],) + tuple(input_shape[2:])

    def extra_repr(self) -> str:
        return ""


class MSELoss(_Loss):
    """Mean squared error, PyTorch's ``nn.MSELoss``. Keeps for backward: input and target,
    2*prod(shape)*itemsize bytes."""

    def forward(self, input: Any, target: Any) -> Any:
        loss = F.mse_loss(input, target, reduction=self.reduction)
        return loss

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else tuple(input_shape)


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
        return loss

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else (input_shape[0],) + tuple(input_shape[2:])


class _ElementwiseLoss(_Loss):
    """A loss over input and a target of the same shape; keeps both for backward."""

    def output_shape(self, input_shape):
        return () if self.reduction != "none" else tuple(input_shape)

    def _functional(self) -> tuple[Any, dict]:
        raise NotImplementedError

    def forward(self, input: Any, target: Any) -> Any:
        forward, kwargs = self._functional()
        loss = forward(input, target, **kwargs)
        return loss


class BCELoss(_ElementwiseLoss):
    """Binary cross entropy on probabilities in [0, 1] (a Sigmoid output), PyTorch's ``nn.BCELoss``;
    ``weight`` (broadcastable to the input) rescales each element. Prefer :class:`BCEWithLogitsLoss`
    on logits: it is stable. Keeps for backward: input and target."""

    def __init__(self, weight: Any = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)

    def _functional(self):
        return F.binary_cross_entropy, dict(weight=self.weight,
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
        return (F.binary_cross_entropy_with_logits,
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
        return F.smooth_l1_loss, dict(reduction=self.reduction, beta=self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}" if self.beta != 1.0 else ""


__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "MSELoss", "NLLLoss", "SmoothL1Loss"]
