"""summary() and suggest_batch_size(), both answered by the estimator alone."""

from __future__ import annotations

from typing import Any

from .. import nn
from ..backend import get_backend
from .estimate import estimate
from .report import MemoryReport, human


def summary(model: nn.Module, input_shape: tuple[int, ...], *, optimizer: Any = None, dtype: Any = None) -> str:
    """A torchinfo-like table: layer, output shape, parameters, trainable, MACs, bytes saved for
    backward, then the totals and the estimated peak of a training step and of inference.

    Args:
        model: a Module; input_shape: batch first, e.g. (1, 3, 224, 224).
        optimizer: counted in the training peak when given.
    Returns:
        The table as a string (print it).
    """
    train = estimate(model, input_shape, optimizer=optimizer, dtype=dtype)
    infer = estimate(model, input_shape, training=False, dtype=dtype)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    modules = {name: m for name, m in model.named_modules()}
    header = f"{'layer':<30} {'output shape':<22} {'params':>12} {'trainable':>10} {'MACs':>14} {'saved':>11}"
    lines = [header, "=" * len(header)]
    for row in train.rows:
        module = modules.get(row.name)
        own = [p for p in module._parameters.values() if p is not None] if module is not None else []
        is_trainable = "-" if not own else ("yes" if all(id(p) in trainable for p in own) else "no")
        lines.append(f"{row.name[:30]:<30} {str(row.output_shape):<22} {row.params:>12,} {is_trainable:>10} "
                     f"{row.flops // 2:>14,} {human(row.saved_bytes):>11}")
    lines.append("=" * len(header))
    lines.append(f"Total params: {model.num_parameters():,} ({human(train.params)}); trainable: "
                 f"{model.num_parameters(trainable_only=True):,}")
    lines.append(f"Total MACs: {sum(r.flops for r in train.rows) // 2:,}")
    lines.append(f"Estimated peak, training step: {human(train.peak)}"
                 + (f" with {train.optimizer}" if train.optimizer else " (no optimizer)"))
    lines.append(f"Estimated peak, inference:     {human(infer.peak)}")
    return "\n".join(lines)


def default_budget() -> int:
    """cupy: the device's free memory plus what the pool holds free; elsewhere there is no default."""
    be = get_backend()
    if be.name != "cupy":
        raise ValueError(f"budget_bytes is required on the {be.name} backend (only cupy knows its device's free "
                         "memory)")
    from ..backend.memory_hooks import device_free_bytes

    return device_free_bytes()


def suggest_batch_size(model: nn.Module, sample_shape: tuple[int, ...], budget_bytes: int | None = None, *,
                       optimizer: Any = None, training: bool = True, dtype: Any = None,
                       max_batch: int = 1 << 20) -> tuple[int, MemoryReport]:
    """The largest batch whose estimated peak fits ``budget_bytes``, by exponential then binary
    search on :func:`estimate` (no trial runs).

    Args:
        sample_shape: one sample's shape without the batch, e.g. (3, 224, 224).
        budget_bytes: the memory to fit in (default on cupy: free device memory plus the pool's
            free blocks).
        max_batch: the search stops there.
    Returns:
        (batch, its MemoryReport).
    Raises:
        ValueError: not even a batch of 1 fits (the message gives batch 1's estimate).
    """
    if budget_bytes is None:
        budget_bytes = default_budget()
    if not isinstance(budget_bytes, int) or isinstance(budget_bytes, bool) or budget_bytes < 1:
        raise ValueError(f"budget_bytes must be a positive int, got {budget_bytes!r}")
    sample_shape = tuple(sample_shape)

    def peak(batch: int) -> MemoryReport:
        return estimate(model, (batch,) + sample_shape, optimizer=optimizer, training=training, dtype=dtype)

    low = peak(1)
    if low.peak > budget_bytes:
        raise ValueError(f"even a batch of 1 needs {human(low.peak)} (estimated), more than the budget of "
                         f"{human(budget_bytes)}:\n{low.table(rows=False)}")
    good, good_report = 1, low
    bad = None
    while bad is None:  # exponential: 2, 4, 8, ... until one does not fit
        trial = min(good * 2, max_batch)
        if trial == good:
            return good, good_report
        report = peak(trial)
        if report.peak <= budget_bytes:
            good, good_report = trial, report
        else:
            bad = trial
    while bad - good > 1:  # binary search between the last fit and the first miss
        mid = (good + bad) // 2
        report = peak(mid)
        if report.peak <= budget_bytes:
            good, good_report = mid, report
        else:
            bad = mid
    return good, good_report
