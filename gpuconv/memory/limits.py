"""Out-of-memory errors that say what to do: the estimate's breakdown and a batch size that fits."""

from __future__ import annotations

from typing import Any

from .. import nn
from ..backend import get_backend
from ..backend import memory_hooks
from ..backend.memory_hooks import OutOfMemoryError
from .estimate import estimate
from .report import human
from .summary import suggest_batch_size

def set_host_limit(limit_bytes: int | None) -> None:
    """The most bytes a training step may take on the numpy and emulated backends (None: no limit).

    ``gpuconv.train.fit`` checks the estimate against it before the first step, and every
    ``gpuconv.functional`` op checks its own output and workspace against it before allocating;
    both raise :class:`gpuconv.OutOfMemoryError` instead (the CPU would swap or be killed). With no
    limit, the ops refuse only a request larger than the machine's physical memory.
    """
    if limit_bytes is not None and (not isinstance(limit_bytes, int) or isinstance(limit_bytes, bool)
                                    or limit_bytes < 1):
        raise ValueError(f"limit_bytes must be a positive int or None, got {limit_bytes!r}")
    memory_hooks.store_host_limit(limit_bytes)


def get_host_limit() -> int | None:
    """The limit :func:`set_host_limit` set (None: no limit)."""
    return memory_hooks.host_limit()


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
    limit = get_host_limit()
    if limit is None or get_backend().capabilities.gpu:
        return
    report = estimate(model, input_shape, optimizer=optimizer)
    if report.peak > limit:
        raise OutOfMemoryError(
            f"a training step on {tuple(input_shape)} needs {human(report.peak)} (estimated), more than the host limit "
            f"of {human(limit)} (gpuconv.memory.set_host_limit)." + _advice(model, input_shape, optimizer, limit),
            op="training step", requested=report.peak)


def explain(exc: OutOfMemoryError, model: nn.Module, input_shape: tuple[int, ...], optimizer: Any = None) -> \
        OutOfMemoryError:
    """``exc`` with the estimate's breakdown and a suggested batch size added (the budget: the
    device's free memory on cupy, the host limit elsewhere)."""
    budget = get_host_limit()
    if get_backend().capabilities.gpu:
        from .summary import default_budget

        budget = default_budget()
    return OutOfMemoryError(str(exc) + _advice(model, input_shape, optimizer, budget), op=exc.op,
                            requested=exc.requested)
