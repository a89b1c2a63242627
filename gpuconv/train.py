"""Training and evaluation loops with tqdm progress bars: ``fit`` and ``evaluate``.

    history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), train_loader,
                  epochs=10, val_loader=test_loader)

A loader is any iterable of ``(inputs, targets)`` batches on the current backend
(``gpuconv.data.DataLoader``, or a list). Accuracy is reported when the model outputs (N, C)
scores and the targets are (N,) class indices.

Under ``gpuconv.distributed`` (every rank calls ``fit`` with its own loader, e.g. a DataLoader with
a :class:`gpuconv.data.DistributedSampler`, and the model wrapped in
``DistributedDataParallel``): progress bars and logs appear on rank 0 only, the history's loss and
accuracy are over every rank's samples, and a non-finite loss on any rank raises
:class:`NonFiniteLossError` on every rank at the same batch.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from .autograd.tensor import Tensor
from .backend import get_backend
from .backend.memory_hooks import OutOfMemoryError
from .grad_mode import no_grad
from .memory.limits import check_fits, explain
from .nn.module import Module

# Progress-bar figures are read back from the device at most this often (each read synchronizes).
POSTFIX_INTERVAL_S = 0.5


class NonFiniteLossError(FloatingPointError):
    """:func:`fit` met a NaN or infinite loss or running statistic (the message names the epoch,
    batch and value or statistic)."""


def _array(value: Any) -> Any:
    """The native array of a Tensor (the meter's kernels take arrays)."""
    return value.data if isinstance(value, Tensor) else value


def _finite(loss_value: Any) -> bool:
    return bool(np.isfinite(get_backend().to_numpy(_array(loss_value))).all())  # one read back from the device


def _running_statistics(model: Module) -> list[tuple[str, Any]]:
    """The floating buffers that are running statistics (BatchNorm's ``running_mean`` / ``running_var``)."""
    return [(name, buffer) for name, buffer in model.named_buffers()
            if buffer is not None and name.rsplit(".", 1)[-1].startswith("running_") and buffer.dtype.kind == "f"]


def _divergence(loss_value: Any, model: Module) -> tuple[str, str] | None:
    """(what is not finite, detail) when the training has diverged after this batch's forward, or
    None: a NaN or infinite loss, or a running statistic the forward made NaN or infinite (the loss
    can stay finite then: an infinite batch variance normalizes its channel to zeros). On every
    backend alike."""
    if not _finite(loss_value):
        return "the loss is not finite", _loss_text(loss_value)
    statistics = _running_statistics(model)
    if not statistics:
        return None
    be = get_backend()
    # 0 * sum(statistic) is NaN exactly when the statistic holds NaN or infinity (a float64 sum of
    # float32/64 values cannot overflow): one backend kernel per statistic, one read back.
    flag = be.zeros((1,), np.float64)
    for _, statistic in statistics:
        be.accumulate_loss(flag, statistic, 0.0)
    if np.isfinite(float(flag[0])):
        return None
    bad = [name for name, statistic in statistics if not np.isfinite(be.to_numpy(statistic)).all()]
    return ("a running statistic is not finite",
            f"{', '.join(bad)} hold{'' if len(bad) > 1 else 's'} NaN or infinity ({_loss_text(loss_value)})")


def _world() -> tuple[int, int]:
    """(rank, world size) of the initialized process group, or (0, 1)."""
    from . import distributed
    if distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return 0, 1


def _ranks_diverged(diverged: bool, world: int) -> list[int]:
    """The ranks whose training diverged at this batch (this rank's verdict gathered from all of
    them, so that every rank stops at the same batch)."""
    if world == 1:
        return [0] if diverged else []
    from . import distributed
    flags = distributed.all_gather(np.array([1 if diverged else 0], dtype=np.int8))
    return [int(r) for r in np.flatnonzero(flags[:, 0])]


def _unwrapped(model: Module) -> Module:
    """The model inside a DistributedDataParallel (what the memory estimate looks at)."""
    # Without the module imported there is no DistributedDataParallel to unwrap (and no import here).
    wrapper = sys.modules.get("gpuconv.nn.parallel.distributed")
    if wrapper is not None and isinstance(model, wrapper.DistributedDataParallel):
        return model.module
    return model


def _loss_text(loss_value: Any) -> str:
    if getattr(loss_value, "ndim", 0):
        return f"a reduction='none' loss of shape {tuple(loss_value.shape)} holding NaN or infinity"
    return f"loss = {float(loss_value)}"


class _Meter:
    """Running sums of loss (float64) and correct predictions (int64), kept on the device until
    read, and of samples. Each update is a kernel of the backend (one for the loss, one for the
    count), so a training step adds no array arithmetic of the array module."""

    def __init__(self, reduction: str):
        self.reduction = reduction
        self.loss_sum: Any = None
        self.host_loss = 0.0  # losses that are not backend arrays (a custom loss returning a float)
        self.correct: Any = None
        self.samples = 0
        self.classified = False
        self.start = time.perf_counter()

    def update(self, outputs: Any, targets: Any, loss_value: Any) -> None:
        be = get_backend()
        outputs, targets, loss_value = _array(outputs), _array(targets), _array(loss_value)
        n = int(outputs.shape[0])
        scale = float(n) if self.reduction == "mean" else 1.0
        if be.is_native(loss_value):
            if self.loss_sum is None:
                self.loss_sum = be.zeros((1,), np.float64)
            be.accumulate_loss(self.loss_sum, loss_value, scale)
        else:
            self.host_loss += float(np.sum(loss_value)) * scale
        if outputs.ndim == 2 and targets.ndim == 1 and np.dtype(targets.dtype).kind in "iu":
            if self.correct is None:
                self.correct = be.zeros((1,), np.int64)
            be.count_correct(outputs, targets, self.correct)
            self.classified = True
        self.samples += n

    def result(self, over_ranks: bool = False) -> dict[str, float | None]:
        """The figures so far; ``over_ranks``: summed over every rank's samples (a collective:
        every rank must ask), with the slowest rank's time."""
        elapsed = max(time.perf_counter() - self.start, 1e-12)
        loss_sum = self.host_loss + (0.0 if self.loss_sum is None else float(self.loss_sum[0]))
        correct = 0 if self.correct is None else int(self.correct[0])
        samples = self.samples
        if over_ranks:
            from . import distributed
            totals = distributed.all_reduce(np.array([loss_sum, correct, samples], dtype=np.float64), op="sum")
            loss_sum, correct, samples = float(totals[0]), int(totals[1]), int(totals[2])
            elapsed = float(distributed.all_reduce(np.array([elapsed]), op="max")[0])
        samples = max(samples, 1)
        return {
            "loss": loss_sum / samples,
            "accuracy": correct / samples if self.classified else None,
            "images_per_s": self.samples / elapsed,
            "seconds": elapsed,
        }


def _postfix(metrics: dict[str, float | None]) -> dict[str, str]:
    out = {"loss": f"{metrics['loss']:.4f}"}
    if metrics.get("accuracy") is not None:
        out["acc"] = f"{metrics['accuracy']:.4f}"
    out["img/s"] = f"{metrics['images_per_s']:.0f}"
    return out


def _total(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _cast(inputs: Any, targets: Any, dtype: Any) -> tuple[Any, Any]:
    """Inputs cast to ``dtype``, and floating targets too (integer class labels stay)."""
    if dtype is None:
        return inputs, targets
    if np.dtype(targets.dtype).kind == "f":
        targets = targets.astype(dtype, copy=False)
    return inputs.astype(dtype, copy=False), targets


def evaluate(model: Module, loss: Module, loader: Iterable, progress: bool = True, *, desc: str = "eval",
             dtype: Any = None) -> dict:
    """Loss (mean over samples) and accuracy of ``model`` over ``loader``, in eval mode under
    ``no_grad`` (the model's mode is restored afterwards). ``dtype``: as in :func:`fit`.

    Returns:
        {"loss", "accuracy" (None unless classification), "images_per_s", "seconds"}.
    """
    rank, world = _world()
    progress = progress and rank == 0
    was_training = model.training
    model.eval()
    meter = _Meter(getattr(loss, "reduction", "mean"))
    last = 0.0
    try:
        with no_grad(), tqdm(loader, total=_total(loader), desc=desc, disable=not progress, leave=False,
                             unit="batch") as bar:
            for inputs, targets in bar:
                inputs, targets = _cast(inputs, targets, dtype)
                outputs = model(inputs)
                meter.update(outputs, targets, loss(outputs, targets))
                if progress and time.perf_counter() - last > POSTFIX_INTERVAL_S:
                    bar.set_postfix(_postfix(meter.result()), refresh=False)
                    last = time.perf_counter()
    finally:
        model.train(was_training)
    return meter.result(over_ranks=world > 1)


def fit(model: Module, loss: Module, optimizer: Any, loader: Iterable, epochs: int, val_loader: Iterable | None = None,
        *, progress: bool = True, scheduler: Any = None, dtype: Any = None,
        on_nonfinite: str = "raise") -> list[dict]:
    """Trains ``model`` for ``epochs`` passes over ``loader``.

    Each batch: ``optimizer.zero_grad()``, forward, ``loss``, backward (no input gradient is
    computed for the first layer), ``optimizer.step()``. Out of memory raises
    :class:`gpuconv.OutOfMemoryError` with the memory estimate's breakdown and a batch size that
    fits; on numpy/emulated, with ``gpuconv.memory.set_host_limit``, before the first step. After each epoch, ``scheduler.step()``
    (when given) and an :func:`evaluate` pass over ``val_loader`` (when given).

    Args:
        model: a Module; loss: a loss module (``CrossEntropyLoss``, ``MSELoss``).
        optimizer: a ``gpuconv.optim`` optimizer over ``model.parameters()``.
        loader, val_loader: iterables of (inputs, targets) batches on the current backend. When
            ``loader.sampler`` has ``set_epoch`` (a DistributedSampler), fit calls it with 0, 1, ...
            before each epoch.
        progress: show tqdm bars with loss, accuracy and images/s (False: silent).
        scheduler: a learning-rate scheduler stepped once per epoch.
        dtype: casts each batch's inputs, and floating targets, to this dtype (e.g. np.float32 for
            float64 data from scikit-learn); None leaves batches as they come.
        on_nonfinite: what a NaN or infinite loss, or a NaN or infinite running statistic of a
            batch norm, does (the training has diverged; the same on every backend): ``"raise"``
            (the default) stops with a :class:`NonFiniteLossError` naming the epoch, batch and
            loss or statistic, before that batch's backward and step (its update is not applied;
            the running statistics its forward updated stay as they are); ``"warn"`` warns at the
            first one of each epoch and trains on. Checking reads the loss back from the device
            once per batch, and one flag per batch for a model with running statistics.
    Returns:
        The history: one dict per epoch with "epoch", "loss", "accuracy" (training, averaged over
        the epoch), "images_per_s", "seconds", "lr", and "val_loss" / "val_accuracy" with a val_loader.
    """
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if on_nonfinite not in ("raise", "warn"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {on_nonfinite!r}")
    dtype = None if dtype is None else np.dtype(dtype)
    rank, world = _world()
    progress = progress and rank == 0
    history: list[dict] = []
    reduction = getattr(loss, "reduction", "mean")
    checked = False
    sampler = getattr(loader, "sampler", None)
    for epoch in range(1, int(epochs) + 1):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch - 1)  # DistributedSampler: this epoch's shuffle, the same on every rank
        model.train()
        meter = _Meter(reduction)
        last = 0.0
        warned = False
        with tqdm(loader, total=_total(loader), desc=f"epoch {epoch}/{epochs}", disable=not progress,
                  unit="batch") as bar:
            for batch, (inputs, targets) in enumerate(bar, 1):
                inputs, targets = _cast(inputs, targets, dtype)
                if not checked:
                    check_fits(_unwrapped(model), tuple(inputs.shape), optimizer)
                    checked = True
                try:
                    optimizer.zero_grad()
                    outputs = model(inputs)
                    loss_value = loss(outputs, targets)
                    diverged = None if warned else _divergence(loss_value, model)
                    bad_ranks = [] if warned else _ranks_diverged(diverged is not None, world)
                    if bad_ranks:
                        where = f" on rank(s) {', '.join(map(str, bad_ranks))}" if world > 1 else ""
                        what, detail = diverged or ("the training diverged on another rank",
                                                    "this rank's loss and running statistics are finite")
                        message = (f"fit: {what} at epoch {epoch}, batch {batch}{where}: {detail} (training "
                                   "diverged: lower the learning rate, or set gpuconv.flags.detect_anomaly = True to "
                                   "find the first layer that produces NaN or infinity)")
                        if on_nonfinite == "raise":
                            raise NonFiniteLossError(message)
                        if rank == 0:
                            warnings.warn(message + "; training goes on (on_nonfinite='warn')", RuntimeWarning,
                                          stacklevel=2)
                        warned = True
                    # reduction="none": every element's gradient is 1, as if the loss were summed.
                    (loss_value if loss_value.numel() == 1 else loss_value.sum()).backward()
                    optimizer.step()
                except OutOfMemoryError as exc:
                    raise explain(exc, model, tuple(inputs.shape), optimizer) from exc
                meter.update(outputs, targets, loss_value)
                if progress and time.perf_counter() - last > POSTFIX_INTERVAL_S:
                    bar.set_postfix(_postfix(meter.result()), refresh=False)
                    last = time.perf_counter()
            record = {"epoch": epoch, **meter.result(over_ranks=world > 1)}
            if progress:
                bar.set_postfix(_postfix(record))
        groups = getattr(optimizer, "param_groups", None)
        record["lr"] = groups[0]["lr"] if groups else None
        if scheduler is not None:
            scheduler.step()
        if val_loader is not None:
            val = evaluate(model, loss, val_loader, progress=progress, desc=f"val {epoch}/{epochs}", dtype=dtype)
            record["val_loss"] = val["loss"]
            record["val_accuracy"] = val["accuracy"]
            if progress:
                tqdm.write(f"epoch {epoch}: loss {record['loss']:.4f}"
                           + (f", acc {record['accuracy']:.4f}" if record["accuracy"] is not None else "")
                           + f", val_loss {val['loss']:.4f}"
                           + (f", val_acc {val['accuracy']:.4f}" if val["accuracy"] is not None else ""))
        history.append(record)
    return history
