"""The training step that :func:`gpuconv.memory.estimate` runs on shapes and :func:`compare` measures."""

from __future__ import annotations

from typing import Any

from .. import nn


def train_step(model: nn.Module, criterion: nn.Module, optimizer: Any, x: Any, target: Any) -> Any:
    """One step as ``fit`` runs it; returns the loss."""
    if optimizer is not None:
        optimizer.zero_grad()
    else:
        model.zero_grad()
    out = model(x)
    value = criterion(out, target)
    value.backward()
    if optimizer is not None:
        optimizer.step()
    return value
