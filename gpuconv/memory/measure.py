"""measure() and compare(): the estimator checked against the allocator on a real step."""

from __future__ import annotations

import gc as garbage_collector
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import nn
from ..backend import get_backend
from ..backend.memory_hooks import track_peak
from ..grad_mode import no_grad
from .estimate import estimate, output_shape
from .report import MemoryReport, human
from .step import train_step


@dataclass
class MeasuredPeak:
    """What :func:`measure` saw.

    Attributes:
        peak: the most bytes in use while ``fn`` ran, including ``start``.
        start: bytes in use when ``fn`` started, as far as the tracker sees them (cupy: the pool's
            bytes in use; numpy/emulated: what tracemalloc traced before, 0 when it was not running).
        reserved: cupy: the memory pool's total bytes afterwards (in use plus cached); else None.
        backend: the backend that ran ``fn``.
        result: what ``fn`` returned.
    """

    peak: int
    start: int
    reserved: int | None
    backend: str
    result: Any = None


def measure(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> MeasuredPeak:
    """Runs ``fn(*args, **kwargs)`` and returns the high-water mark of bytes in use.

    numpy and emulated: ``tracemalloc`` (it sees NumPy's buffers); what existed before counts only
    when tracemalloc was already tracing when it was allocated (start it first to see everything).
    cupy: a ``cupy.cuda.MemoryHook`` reading the pool's bytes in use after each allocation, and the
    pool's reserved bytes. Python's cycle collector runs first.
    """
    name = get_backend().name
    # Python objects in reference cycles from earlier work (ctypes launch records, generators) wait
    # for the cycle collector; collected now, they do not count as in use when fn starts.
    garbage_collector.collect()
    with track_peak(name) as tracker:
        result = fn(*args, **kwargs)
    return MeasuredPeak(int(tracker.peak), int(tracker.start), tracker.reserved, name, result)


@dataclass
class Comparison:
    """Estimate and measurement of the same step, per category (bytes)."""

    estimate: MemoryReport
    measured: dict

    def rows(self) -> list[tuple[str, int, int]]:
        return [(k, getattr(self.estimate, k), v) for k, v in self.measured.items()]

    def __str__(self) -> str:
        lines = [f"{'':<16} {'estimate':>12} {'measured':>12} {'ratio':>7}"]
        for name, est, got in self.rows():
            ratio = f"{est / got:.3f}" if got else ("1.000" if est == got else "-")
            lines.append(f"{name:<16} {human(est):>12} {human(got):>12} {ratio:>7}")
        return "\n".join(lines)


def _inputs(model: nn.Module, input_shape, dtype, loss: str, training: bool):
    be = get_backend()
    rng = np.random.default_rng(0)
    x = be.asarray(rng.standard_normal(input_shape).astype(dtype))
    if not training:
        return x, None
    out_shape = output_shape(model, tuple(input_shape), dtype)
    if loss == "cross_entropy":
        target = rng.integers(0, out_shape[1], size=(out_shape[0],) + tuple(out_shape[2:]), dtype=np.int64)
    else:
        target = rng.standard_normal(out_shape).astype(dtype)
    return x, be.asarray(target)


def _live_bytes(model: nn.Module, optimizer: Any, *arrays: Any) -> int:
    params = sum(p.nbytes for p in model.parameters())
    grads = sum(int(p.grad.nbytes) for p in model.parameters() if p.grad is not None)
    buffers = sum(int(b.nbytes) for b in model.buffers())
    state = optimizer.state_bytes() if optimizer is not None else 0
    return params + grads + buffers + state + sum(int(a.nbytes) for a in arrays if a is not None)


def compare(model: nn.Module, input_shape: tuple[int, ...], *, optimizer: Any = None, training: bool = True,
            steps: int = 2, loss: str = "cross_entropy", dtype: Any = None, verbose: bool = True) -> Comparison:
    """Runs ``steps`` real steps of ``model`` on random data of ``input_shape`` and compares the
    last one with :func:`estimate` (``step="later"`` when ``steps >= 2``, else ``"first"``).

    The model's parameters and the optimizer's state ARE updated (it trains on random data); the
    model's mode is restored. Prints the comparison when ``verbose``.

    Returns:
        A :class:`Comparison`: the report and the measured params, grads, optimizer_state (the
        arrays' bytes after the step) and peak (the allocator's high-water mark of the last step);
        on cupy also pool_peak (the memory pool's reserved bytes after the last step).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    params = list(model.parameters())
    dtype = np.dtype(dtype or (params[0].dtype if params else np.float32))
    criterion = nn.CrossEntropyLoss() if loss == "cross_entropy" else nn.MSELoss()
    x, target = _inputs(model, input_shape, dtype, loss, training)
    was_training = model.training
    report = estimate(model, input_shape, optimizer=optimizer, training=training, dtype=dtype, loss=loss,
                      step="later" if steps >= 2 else "first")
    # A forward and backward before measuring: kernels load (the emulated backend keeps compiled
    # modules and their Python objects) and lazy caches fill outside the measured steps.
    model.train(training)
    if training:
        train_step(model, criterion, None, x, target)
        model.zero_grad()
    else:
        with no_grad():
            model(x)
    model.train(was_training)
    # Everything that exists before tracing starts; tracemalloc sees only what is allocated after.
    on_host = not get_backend().capabilities.gpu  # host memory: tracemalloc sees the arrays
    untraced = _live_bytes(model, optimizer, x, target) if on_host else 0
    tracing = on_host and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        model.train(training)
        for _ in range(steps):
            if training:
                m = measure(train_step, model, criterion, optimizer, x, target)
            else:
                with no_grad():
                    m = measure(model, x)
            del m.result
    finally:
        if tracing:
            tracemalloc.stop()
        model.train(was_training)
    measured = {
        "params": sum(p.nbytes for p in model.parameters()),
        "grads": sum(int(p.grad.nbytes) for p in model.parameters() if p.grad is not None) if training else 0,
        "optimizer_state": optimizer.state_bytes() if (optimizer is not None and training) else 0,
        "peak": untraced + m.peak,
    }
    if m.reserved is not None:
        # cupy: what the pool holds (in use and cached) against the estimate's 512-byte-block peak,
        # a lower bound of it.
        measured["pool_peak"] = int(m.reserved)
    result = Comparison(report, measured)
    if verbose:
        print(result)
    return result
