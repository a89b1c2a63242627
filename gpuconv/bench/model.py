"""The ``model`` subcommand: a zoo model's training step and inference, against torchvision's twin.

A training step is ``zero_grad``, forward, cross-entropy, backward (no input gradient) and an SGD
step with momentum. The peak memory of each mode is measured from an empty start (the model, its
gradients and optimizer state, the batch and the step's temporaries, as they exist at the peak),
and estimated by ``gpuconv.memory.estimate`` when this build of gpuconv has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import gpuconv
from gpuconv import models, nn, optim

from .errors import BenchError
from .peak import measure_peak
from .progress import bar
from .runner import CHILD_ERRORS, Settings, relative_error
from .timing import interleaved, timed_call
from .torch_child import TorchChild

MODES = ("train", "inference")


@dataclass
class Workload:
    """A model with its batch, loss and optimizer on the current backend."""

    model: Any
    x: Any
    target: Any
    loss: Any
    optimizer: Any

    def step(self, mode: str) -> Any:
        """One training step (``"train"``) or one inference (``"inference"``); returns the logits."""
        if mode == "inference":
            self.model.eval()
            with gpuconv.no_grad():
                return self.model(self.x)
        self.model.train()
        self.optimizer.zero_grad()
        out = self.model(self.x)
        self.loss(out, self.target).backward()
        self.optimizer.step()
        return out


def build_model(name: str, num_classes: int, dtype: np.dtype, state: dict | None = None) -> Any:
    """Zoo model ``name`` (3 input channels) on the current backend, with ``state`` loaded when given."""
    gpuconv.manual_seed(0)
    model = getattr(models, name)(num_classes=num_classes, in_channels=3, dtype=dtype)
    if state is not None:
        model.load_state_dict({k: np.asarray(v).astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating)
                               else np.asarray(v) for k, v in state.items()})
    return model


def workload(name: str, batch: int, image_size: int, num_classes: int, dtype: np.dtype,
             state: dict | None = None) -> Workload:
    """Model ``name`` with a random batch (N, 3, image_size, image_size), targets, loss and SGD."""
    rng = np.random.default_rng(0)
    model = build_model(name, num_classes, dtype, state)
    x = gpuconv.asarray(rng.standard_normal((batch, 3, image_size, image_size)).astype(dtype))
    target = gpuconv.asarray(rng.integers(0, num_classes, batch))
    return Workload(model, x, target, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01, momentum=0.9))


def check(name: str, args: Any, dtype: np.dtype) -> float:
    """Relative error of the inference output on the first images against the numpy path in float64.

    NOTE: inference only. In training mode batch norm normalizes over the slice, which is
    ill-conditioned on small slices (2 images at 32x32: ResNet's layer4 normalizes 2 values per
    channel) and amplifies float32 rounding far past any tolerance. The training step's ops are
    checked one by one by the conv, pool and bn subcommands.
    """
    images = min(args.check_images, args.batch)
    ours = workload(name, images, args.image_size, args.num_classes, dtype)
    state = {k: gpuconv.to_numpy(v) for k, v in ours.model.state_dict().items()}
    with gpuconv.backend("numpy"):
        reference = workload(name, images, args.image_size, args.num_classes, np.dtype(np.float64), state)
        want = reference.step("inference")
    return relative_error(ours.step("inference"), want)


def check_input(name: str, args: Any, dtype: np.dtype) -> float:
    """:func:`check`, with a model that does not take this image size reported as a BenchError."""
    try:
        return check(name, args, dtype)
    except ValueError as error:
        raise BenchError(f"model {name} does not run at --image-size {args.image_size}: {error}") from None


def estimate(name: str, args: Any, dtype: np.dtype, mode: str, notes: list[str]) -> int | None:
    """``gpuconv.memory.estimate``'s peak for one mode, or None (with a note) where it fails."""
    from gpuconv import memory

    load = workload(name, args.batch, args.image_size, args.num_classes, dtype)
    shape = (args.batch, 3, args.image_size, args.image_size)
    try:
        report = memory.estimate(load.model, shape, optimizer=load.optimizer, training=mode == "train")
    except (TypeError, ValueError) as error:
        notes.append(f"{name} {mode}: the estimator failed: {type(error).__name__}: {error}")
        return None
    return int(report.peak)


def measured_peak(name: str, args: Any, dtype: np.dtype, mode: str, be: Any) -> int:
    """Peak bytes of building the workload and running two steps of ``mode`` (see peak.py). A model
    that does not run in this mode at these sizes (a training-mode batch norm over one value per
    channel) is a BenchError."""
    def steps() -> None:
        load = workload(name, args.batch, args.image_size, args.num_classes, dtype)
        load.step(mode)
        load.step(mode)
    try:
        return measure_peak(steps, be)
    except ValueError as error:
        raise BenchError(f"model {name} does not run in {mode} mode at --image-size {args.image_size} with "
                         f"--batch {args.batch}: {error}") from None


def run(args: Any, be: Any, settings: Settings, torch: TorchChild | None, notes: list[str]) -> list[dict[str, Any]]:
    """Rows for the training step and inference of ``args.model`` (gpuconv, then PyTorch when compared)."""
    name, dtype = args.model, np.dtype(args.dtype)
    rows = []
    with bar(1 + 3 * len(MODES), name, "step", settings.quiet) as progress:
        progress.set_postfix_str("checking against the numpy path")
        error = check_input(name, args, dtype)
        progress.update()
        _run_modes(name, dtype, error, args, be, settings, torch, notes, rows, progress)
    return rows


def _run_modes(name, dtype, error, args, be, settings, torch, notes, rows, progress) -> None:
    """Appends the rows of each mode (measured peak, estimate, timing) to ``rows``."""
    status = "ok" if error <= settings.tolerance else "FAILED"
    twins: list[str] = []
    if settings.timing and status == "ok" and torch is not None and torch.available:
        try:
            twins = torch.build({"family": "model", "model": name, "batch": args.batch, "image_size": args.image_size,
                                 "num_classes": args.num_classes, "dtype": dtype.name})
        except CHILD_ERRORS as exc:
            notes.append(f"{name}: PyTorch twin unavailable: {exc}")
    load = workload(name, args.batch, args.image_size, args.num_classes, dtype) if settings.timing else None
    timed = timed_call(be)
    for mode in MODES:
        progress.set_postfix_str(f"{mode}: measuring the peak")
        row: dict[str, Any] = {"case": name, "mode": mode, "impl": "gpuconv", "status": status, "max_error": error,
                               "peak_measured_bytes": measured_peak(name, args, dtype, mode, be)}
        progress.update()
        progress.set_postfix_str(f"{mode}: estimating")
        estimated = estimate(name, args, dtype, mode, notes)
        progress.update()
        if estimated is not None:
            row["peak_estimated_bytes"] = estimated
        rows.append(row)
        progress.set_postfix_str(f"{mode}: timing")
        if load is None or status != "ok":
            progress.update()
            continue
        fns: list[Callable[[], float]] = [lambda mode=mode: timed(lambda: load.step(mode))]
        if mode in twins:
            fns.append(torch.timed(mode))
        stats = interleaved(fns, settings.warmup, settings.repeats, settings.pause)
        row.update(median_ms=stats[0].median * 1e3, best_ms=stats[0].best * 1e3,
                   images_per_s=args.batch / stats[0].median)
        if len(stats) > 1:
            row.update(torch_ms=stats[1].median * 1e3, ratio_torch=stats[0].median / stats[1].median)
            rows.append({"case": name, "mode": mode, "impl": "torch", "status": "ok",
                         "median_ms": stats[1].median * 1e3, "best_ms": stats[1].best * 1e3,
                         "images_per_s": args.batch / stats[1].median})
        progress.update()
