"""Out-of-memory errors that say what to do: the estimate's breakdown and a batch size that fits."""

from __future__ import annotations

from typing import Any

from .. import nn
from ..backend import get_backend
from ..backend.memory_hooks import OutOfMemoryError
from .estimate import estimate
from .report import human
from .summary import suggest_batch_size

_host_limit: int | None = None


def set_host_limit(limit_bytes: int | None) -> None:
    """The most bytes a training step may take on the numpy and emulated backends (None: no limit).

    ``gpuconv.train.fit`` checks the estimate against it before the first step and raises
    :class:`gpuconv.OutOfMemoryError` instead of allocating (the CPU would swap or be killed).
    """
    if limit_bytes is not None and (not isinstance(limit_bytes, int) or isinstance(limit_bytes, bool)
                                    or limit_bytes < 1):
        raise ValueError(f"limit_bytes must be a positive int or None, got {limit_bytes!r}")
    global _host_limit
    _host_limit = limit_bytes


def get_host_limit() -> int | None:
    return _host_limit


def _advice(model: nn.Module, input_shape: tuple[int, ...], optimizer: Any, budget: int | None) -> str:
    report = estimate(model, input_shape, optimizer=optimizer)
    text = f"\nThe estimate for a step on {tuple(input_shape)}:\n{report.table(rows=False)}"
    if budget is not None:
        try:
            batch, _ = suggest_batch_size(model, tuple(input_shape[1:]), budget, optimizer=optimizer)
            text += f"\nSuggested batch size: {batch} (the largest whose estimated peak fits {human(budget)})."
        except ValueError as exc:
            text += f"\n{exc}"
    return text


def check_fits(model: nn.Module, input_shape: tuple[int, ...], optimizer: Any = None) -> None:
    """Raises :class:`gpuconv.OutOfMemoryError` before anything is allocated when the numpy/emulated
    host limit (:func:`set_host_limit`) is set and the step's estimated peak exceeds it."""
    if _host_limit is None or get_backend().name == "cupy":
        return
    report = estimate(model, input_shape, optimizer=optimizer)
    if report.peak > _host_limit:
        raise OutOfMemoryError(
            f"a training step on {tuple(input_shape)} needs {human(report.peak)} (estimated), more than the host limit "
            f"of {human(_host_limit)} (gpuconv.memory.set_host_limit)." + _advice(model, input_shape, optimizer,
                                                                                 _host_limit),
            op="training step", requested=report.peak)


def explain(exc: OutOfMemoryError, model: nn.Module, input_shape: tuple[int, ...], optimizer: Any = None) -> \
        OutOfMemoryError:
    """``exc`` with the estimate's breakdown and a suggested batch size added (the budget: the
    device's free memory on cupy, the host limit elsewhere)."""
    budget = _host_limit
    if get_backend().name == "cupy":
        from .summary import default_budget

        budget = default_budget()
    return OutOfMemoryError(str(exc) + _advice(model, input_shape, optimizer, budget), op=exc.op,
                            requested=exc.requested)
