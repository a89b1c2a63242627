"""summary() and suggest_batch_size(), both answered by the estimator alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import nn
from ..backend import get_backend
from .estimate import estimate
from .report import MemoryReport, human


@dataclass(frozen=True)
class SummaryRow:
    """One leaf module of :func:`summary`: its name, output shape, own parameters ("yes"/"no"
    trainable, "-" for none), multiply-accumulates and bytes kept for backward."""

    name: str
    output_shape: tuple[int, ...]
    params: int
    trainable: str
    macs: int
    saved_bytes: int


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` reports: ``str()`` is the table, ``repr()`` one line.

    Attributes:
        model: the model's class name; input_shape: the batch's shape.
        rows: one :class:`SummaryRow` per leaf module in execution order.
        total_params, trainable_params, total_macs: totals over the model.
        training, inference: the estimator's :class:`MemoryReport` of a training step and of
            inference (their ``peak`` is the estimated peak in bytes).
    """

    model: str
    input_shape: tuple[int, ...]
    rows: list[SummaryRow]
    total_params: int
    trainable_params: int
    total_macs: int
    training: MemoryReport
    inference: MemoryReport

    def table(self) -> str:
        header = f"{'layer':<30} {'output shape':<22} {'params':>12} {'trainable':>10} {'MACs':>14} {'saved':>11}"
        lines = [header, "=" * len(header)]
        for row in self.rows:
            lines.append(f"{row.name[:30]:<30} {str(row.output_shape):<22} {row.params:>12,} {row.trainable:>10} "
                         f"{row.macs:>14,} {human(row.saved_bytes):>11}")
        lines.append("=" * len(header))
        lines.append(f"Total params: {self.total_params:,} ({human(self.training.params)}); trainable: "
                     f"{self.trainable_params:,}")
        lines.append(f"Total MACs: {self.total_macs:,}")
        world = self.training.world_size
        lines.append(f"Estimated peak, training step: {human(self.training.peak)}"
                     + (f" with {self.training.optimizer}" if self.training.optimizer else " (no optimizer)")
                     + (f", per rank of {world} (with {human(self.training.communication)} of "
                        "DistributedDataParallel gradient buckets)" if world > 1 else ""))
        lines.append(f"Estimated peak, inference:     {human(self.inference.peak)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"ModelSummary({self.model} on {self.input_shape}: {self.total_params:,} params, "
                f"{self.total_macs:,} MACs, peak {human(self.training.peak)} training, "
                f"{human(self.inference.peak)} inference)")


def summary(model: nn.Module, input_shape: tuple[int, ...], *, optimizer: Any = None, dtype: Any = None,
            backend: str | None = None, verbose: bool = True, world_size: int = 1) -> ModelSummary:
    """A torchinfo-like table: layer, output shape, parameters, trainable, MACs, bytes saved for
    backward, then the totals and the estimated peak of a training step and of inference.

    Args:
        model: a Module; input_shape: batch first, e.g. (1, 3, 224, 224).
        optimizer: counted in the training peak when given.
        dtype, backend: as in :func:`estimate`.
        verbose: print the table (as torchinfo does); False only returns it.
        world_size: ranks of DistributedDataParallel training (``input_shape`` is one rank's
            batch); the training peak then includes the gradient buckets, and says so.
    Returns:
        A :class:`ModelSummary`: ``str(result)`` is the table, its fields the numbers.
    """
    train = estimate(model, input_shape, optimizer=optimizer, dtype=dtype, backend=backend,
                     world_size=world_size)
    infer = estimate(model, input_shape, training=False, dtype=dtype, backend=backend)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    modules = {name: m for name, m in model.named_modules()}
    rows = []
    for row in train.rows:
        module = modules.get(row.name)
        own = [p for p in module._parameters.values() if p is not None] if module is not None else []
        is_trainable = "-" if not own else ("yes" if all(id(p) in trainable for p in own) else "no")
        rows.append(SummaryRow(row.name, tuple(row.output_shape), row.params, is_trainable, row.flops // 2,
                               row.saved_bytes))
    result = ModelSummary(type(model).__name__, tuple(input_shape), rows, model.num_parameters(),
                          model.num_parameters(trainable_only=True), sum(r.flops for r in train.rows) // 2, train,
                          infer)
    if verbose:
        print(result)
    return result


def default_budget() -> int:
    """cupy: the device's free memory plus what the pool holds free; elsewhere there is no default."""
    be = get_backend()
    if not be.capabilities.gpu:
        raise ValueError(f"budget_bytes is required on the {be.name} backend (only cupy knows its device's free "
                         "memory)")
    from ..backend.memory_hooks import device_free_bytes

    return device_free_bytes()


def suggest_batch_size(model: nn.Module, sample_shape: tuple[int, ...], budget_bytes: int | None = None, *,
                       optimizer: Any = None, training: bool = True, dtype: Any = None,
                       backend: str | None = None, max_batch: int = 1 << 20) -> tuple[int, MemoryReport]:
    """The largest batch whose estimated peak fits ``budget_bytes``, by exponential then binary
    search on :func:`estimate` (no trial runs).

    Args:
        sample_shape: one sample's shape without the batch, e.g. (3, 224, 224).
        budget_bytes: the memory to fit in (default on cupy: free device memory plus the pool's
            free blocks).
        optimizer, training, dtype, backend: as in :func:`estimate` (``backend="cupy"`` answers for
            the GPU from a machine without one).
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
        return estimate(model, (batch,) + sample_shape, optimizer=optimizer, training=training, dtype=dtype,
                        backend=backend)

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
