"""``gpuconv.warmup()``: pays every first-use cost up front, and says what it cost.

On the cupy backend a process's first use of a kernel file loads its shipped binary (or compiles
it with NVRTC when none fits the GPU), and CuPy compiles its own elementwise kernels on their first
use; on the emulated backend g++ compiles each kernel file once per machine. ``warmup`` does all of
that before the first real step, so a training loop's first step costs what later ones do.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NamedTuple

import numpy as np

from . import nn, optim
from .backend import asarray, get_backend
from .grad_mode import no_grad
from .random import default_generator


class WarmupReport(NamedTuple):
    """What :func:`warmup` did and how long each part took, in seconds."""

    backend: str
    kernel_files: tuple[str, ...]
    load_seconds: float
    step_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.load_seconds + self.step_seconds

    def __str__(self) -> str:
        loaded = (f"{len(self.kernel_files)} kernel files loaded in {self.load_seconds:.2f} s"
                  if self.kernel_files else "no kernel files to load")
        return (f"gpuconv warm-up on {self.backend}: {loaded}, a first training and inference step of each "
                f"layer type in {self.step_seconds:.2f} s (total {self.total_seconds:.2f} s)")


def warmup(dtypes: tuple[Any, ...] = (np.float32,), *, verbose: bool = True) -> WarmupReport:
    """Loads or compiles every kernel the current backend runs, then runs one tiny training step and
    one inference step through each standard layer type, loss and optimizer, per dtype.

    Args:
        dtypes: the floating dtypes the model will use (float32, float64).
        verbose: print the report to stderr.

    Returns:
        A :class:`WarmupReport`; ``str(report)`` is the line printed.
    """
    dtypes = tuple(np.dtype(d) for d in dtypes)
    for dtype in dtypes:
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtypes must hold float32 or float64, got {dtype.name}")
    backend = get_backend()
    start = time.perf_counter()
    names = tuple(backend.load_kernel_files())
    loaded = time.perf_counter()
    # The tiny model's initialisation and dropout draw from the default generator: restore its state
    # afterwards, so warming up changes no result of a seeded run.
    generator = default_generator().bit_generator
    saved_state = generator.state
    try:
        for dtype in dtypes:
            _tiny_steps(dtype)
    finally:
        generator.state = saved_state
    backend.synchronize()
    report = WarmupReport(backend.name, names, loaded - start, time.perf_counter() - loaded)
    if verbose:
        print(report, file=sys.stderr, flush=True)
    return report


def _tiny_steps(dtype: np.dtype) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 1), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, groups=2, padding=1), nn.LeakyReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(4, 3),
    ).to(dtype)
    criterion = nn.CrossEntropyLoss()
    x = asarray(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(dtype))
    target = asarray(np.array([0, 2]))
    for optimizer in (optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                      optim.Adam(model.parameters(), lr=1e-3)):
        model.train()
        optimizer.zero_grad()
        criterion(model(x), target).backward()
        optimizer.step()
    model.eval()
    with no_grad():
        model(x)
