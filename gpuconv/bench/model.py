"""The ``model`` subcommand: a zoo model's training step and inference, against its PyTorch twin.

A training step is ``zero_grad``, forward, cross-entropy, backward (no input gradient) and an SGD
step with momentum (:func:`train_step`). The peak memory of each mode is measured from an empty
start (the model, its gradients and optimizer state, the batch and the step's temporaries, as they
exist at the peak), and estimated by ``gpuconv.memory.estimate`` when this build of gpuconv has it.

The PyTorch twin is built from gpuconv's own module tree (:mod:`gpuconv.bench.torch_twin`, no
torchvision), takes the same weights, must give the same inference output, and is timed in this
process, interleaved with gpuconv, with as many CPU threads as NumPy's BLAS.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import gpuconv
from gpuconv import models, nn, optim

from . import torch_twin
from .errors import BenchError
from .peak import measure_peak
from .progress import bar
from .runner import Settings, relative_error
from .timing import CLOCKS, interleaved, timed_call

MODES = ("train", "inference")


def train_step(model: Any, loss: Any, optimizer: Any, x: Any, target: Any) -> Any:
    """One gpuconv training step; returns the logits. The one place that says how gpuconv trains."""
    optimizer.zero_grad()
    out = model(x)
    loss(out, target).backward()
    optimizer.step()
    return out


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
        return train_step(self.model, self.loss, self.optimizer, self.x, self.target)


def default_in_channels(name: str) -> int:
    """The input channels zoo model ``name`` is built with by default (LeNet-5: 1, the others: 3)."""
    return int(inspect.signature(getattr(models, name)).parameters["in_channels"].default)


def build_model(name: str, num_classes: int, dtype: np.dtype, state: dict | None = None,
                in_channels: int = 3) -> Any:
    """Zoo model ``name`` on the current backend, with ``state`` loaded when given."""
    gpuconv.manual_seed(0)
    model = getattr(models, name)(num_classes=num_classes, in_channels=in_channels, dtype=dtype)
    if state is not None:
        model.load_state_dict({k: np.asarray(v).astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating)
                               else np.asarray(v) for k, v in state.items()})
    return model


def workload(name: str, batch: int, image_size: int, num_classes: int, dtype: np.dtype,
             state: dict | None = None, in_channels: int = 3) -> Workload:
    """Model ``name`` with a random batch (N, in_channels, image_size, image_size), targets, loss and SGD."""
    rng = np.random.default_rng(0)
    model = build_model(name, num_classes, dtype, state, in_channels)
    x = gpuconv.asarray(rng.standard_normal((batch, in_channels, image_size, image_size)).astype(dtype))
    target = gpuconv.asarray(rng.integers(0, num_classes, batch))
    return Workload(model, x, target, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01, momentum=0.9))


def in_channels(name: str, args: Any) -> int:
    """``--in-channels``, or model ``name``'s own default."""
    return args.in_channels if getattr(args, "in_channels", None) else default_in_channels(name)


def args_workload(name: str, args: Any, dtype: np.dtype, batch: int | None = None,
                  state: dict | None = None) -> Workload:
    """:func:`workload` of model ``name`` with the command line's batch, image size, classes and channels."""
    return workload(name, args.batch if batch is None else batch, args.image_size, args.num_classes, dtype,
                    state, in_channels(name, args))


def check(name: str, args: Any, dtype: np.dtype) -> float:
    """Relative error of the inference output on the first images against the numpy path in float64.

    NOTE: inference only. In training mode batch norm normalizes over the slice, which is
    ill-conditioned on small slices (2 images at 32x32: ResNet's layer4 normalizes 2 values per
    channel) and amplifies float32 rounding far past any tolerance. The training step's ops are
    checked one by one by the conv, pool and bn subcommands.
    """
    images = min(args.check_images, args.batch)
    ours = args_workload(name, args, dtype, images)
    state = {k: gpuconv.to_numpy(v) for k, v in ours.model.state_dict().items()}
    with gpuconv.backend("numpy"):
        reference = args_workload(name, args, np.dtype(np.float64), images, state)
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

    load = args_workload(name, args, dtype)
    try:
        report = memory.estimate(load.model, tuple(load.x.shape), optimizer=load.optimizer,
                                 training=mode == "train")
    except (TypeError, ValueError) as error:
        notes.append(f"{name} {mode}: the estimator failed: {type(error).__name__}: {error}")
        return None
    return int(report.peak)


def measured_peak(name: str, args: Any, dtype: np.dtype, mode: str, be: Any) -> int:
    """Peak bytes of building the workload and running two steps of ``mode`` (see peak.py). A model
    that does not run in this mode at these sizes (a training-mode batch norm over one value per
    channel) is a BenchError."""
    def steps() -> None:
        load = args_workload(name, args, dtype)
        load.step(mode)
        load.step(mode)
    try:
        return measure_peak(steps, be)
    except ValueError as error:
        raise BenchError(f"model {name} does not run in {mode} mode at --image-size {args.image_size} with "
                         f"--batch {args.batch}: {error}") from None


def blas_threads() -> int:
    """Threads of NumPy's BLAS (threadpoolctl when installed; else the environment, else the cores)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        found = [int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "blas"]
        if found:
            return found[0]
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class TorchReference:
    """PyTorch, imported into this process, and the device its twins run on."""

    torch: Any
    device: str

    @classmethod
    def load(cls, be: Any, device_index: int | None, threads: int, notes: list[str]) -> TorchReference | None:
        """PyTorch on the backend's device with ``threads`` CPU threads (0: as many as NumPy's
        BLAS), or None with a note saying why not."""
        threads = threads or blas_threads()
        try:
            import torch
        except ImportError as error:
            notes.append(f"PyTorch not installed ({error}): no PyTorch comparison")
            return None
        device = f"cuda:{device_index or 0}" if be.capabilities.gpu else "cpu"
        if device != "cpu" and not torch.cuda.is_available():
            notes.append(f"PyTorch {torch.__version__} has no usable CUDA device: no PyTorch comparison")
            return None
        torch.set_num_threads(threads)
        notes.append(f"PyTorch {torch.__version__} on {device} ({torch.get_num_threads()} CPU threads; NumPy's BLAS: "
                     f"{blas_threads()}), in this process; its model is the twin of gpuconv's module tree "
                     f"(gpuconv.bench.torch_twin), with the same weights")
        return cls(torch, device)

    def synchronize(self) -> None:
        if self.device != "cpu":
            self.torch.cuda.synchronize(self.device)


@dataclass
class TorchWorkload:
    """The PyTorch twin of a :class:`Workload`: same weights, batch and targets, SGD with momentum."""

    ref: TorchReference
    model: Any
    x: Any
    target: Any
    optimizer: Any
    loss: Any

    @classmethod
    def twin_of(cls, ref: TorchReference, load: Workload, dtype: np.dtype) -> TorchWorkload:
        torch = ref.torch
        model = torch_twin.build(torch, load.model, dtype).to(ref.device)
        x = torch.from_numpy(gpuconv.to_numpy(load.x).copy()).to(ref.device)
        target = torch.from_numpy(gpuconv.to_numpy(load.target).astype(np.int64)).to(ref.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return cls(ref, model, x, target, optimizer, torch.nn.CrossEntropyLoss())

    def step(self, mode: str) -> Any:
        """One training step or one inference, as :meth:`Workload.step`; returns the logits."""
        if mode == "inference":
            self.model.eval()
            with self.ref.torch.no_grad():
                return self.model(self.x)
        self.model.train()
        self.optimizer.zero_grad()
        out = self.model(self.x)
        self.loss(out, self.target).backward()
        self.optimizer.step()
        return out

    def timed(self, mode: str, clock: str = "wall") -> Callable[[], float]:
        """A call that runs ``mode`` once and returns its seconds on ``clock`` (see timing.CLOCKS)."""
        now = CLOCKS[clock]

        def call() -> float:
            self.ref.synchronize()
            start = now()
            self.step(mode)
            self.ref.synchronize()
            return now() - start
        return call

    def inference_error(self, load: Workload, images: int) -> float:
        """Relative error of the twin's inference output against gpuconv's on the first ``images``."""
        torch = self.ref.torch
        load.model.eval()
        self.model.eval()
        with gpuconv.no_grad():
            ours = gpuconv.to_numpy(load.model(load.x[:images]))
        with torch.no_grad():
            theirs = self.model(self.x[:images]).cpu().numpy()
        return relative_error(ours, theirs.astype(np.float64))


def make_twin(ref: TorchReference, load: Workload, dtype: np.dtype, settings: Settings, name: str,
              notes: list[str]) -> TorchWorkload | None:
    """The PyTorch twin of ``load``, or None (with a note) when it cannot be built or disagrees."""
    try:
        twin = TorchWorkload.twin_of(ref, load, dtype)
    except torch_twin.UnsupportedLayer as error:
        notes.append(f"{name}: no PyTorch twin: {error}")
        return None
    error = twin.inference_error(load, max(1, min(settings.check_images, int(load.x.shape[0]))))
    if not error <= settings.tolerance:
        notes.append(f"{name}: the PyTorch twin's inference output differs from gpuconv's (relative error "
                     f"{error:.1e} > {settings.tolerance:.0e}): PyTorch not timed")
        return None
    return twin


def run(args: Any, be: Any, settings: Settings, torch: TorchReference | None,
        notes: list[str]) -> list[dict[str, Any]]:
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
    load = args_workload(name, args, dtype) if settings.timing else None
    twin = None
    if load is not None and status == "ok" and torch is not None:
        twin = make_twin(torch, load, dtype, settings, name, notes)
    clock = getattr(args, "clock", "wall") if not be.capabilities.gpu else "wall"
    if clock == "cpu":
        notes.append("times are CPU seconds of this process's threads (--clock cpu), not elapsed time")
    timed = timed_call(be, clock)
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
        if twin is not None:
            fns.append(twin.timed(mode, clock))
        stats = interleaved(fns, settings.warmup, settings.repeats, settings.pause)
        row.update(median_ms=stats[0].median * 1e3, best_ms=stats[0].best * 1e3,
                   images_per_s=args.batch / stats[0].median)
        if len(stats) > 1:
            row.update(torch_ms=stats[1].median * 1e3, ratio_torch=stats[0].median / stats[1].median,
                       torch_best_ms=stats[1].best * 1e3, ratio_torch_best=stats[0].best / stats[1].best)
            rows.append({"case": name, "mode": mode, "impl": "torch", "status": "ok",
                         "median_ms": stats[1].median * 1e3, "best_ms": stats[1].best * 1e3,
                         "images_per_s": args.batch / stats[1].median})
        progress.update()
