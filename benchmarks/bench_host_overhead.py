"""Host time per call of conv2d, batch_norm, the pooling ops, relu and an optimizer step, on tiny tensors.

The GPU work of these calls is negligible, so wall clock per call is the host overhead a training
step pays per layer (argument checks, shape arithmetic, allocations, kernel lookup and launch).
On cupy it is measured as is (each call queues its kernels; the stream is synchronized once per
batch of calls). On emulated the kernels run on the CPU, so the table also gives the Python side
alone: the same calls with every kernel replaced by a stub that only checks its arguments (what the
cupy loader does before CuPy's own launch, about 12 us measured on an H100 host), and the number
of kernel launches per call (``gpuconv.backend.kernel_stubs``). The last row is a whole ResNet-18
training step on a (2, 3, 32, 32) batch, in ms: on cupy its wall clock (host-bound at that size), on
emulated only its Python side, with the convolutions' GEMMs stubbed too.

    python benchmarks/bench_host_overhead.py --backend emulated [--calls 300]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import gpuconv
import gpuconv.functional as F
from gpuconv import nn, optim
from gpuconv.models import resnet18
from gpuconv.backend.kernel_stubs import stubbed_kernels


def _cases(be):
    rng = np.random.default_rng(0)

    def arr(*shape):
        return be.asarray(rng.standard_normal(shape).astype(np.float32))

    x, w, b = arr(2, 8, 8, 8), arr(8, 8, 3, 3), arr(8)
    rm, rv = arr(8), be.asarray(np.ones(8, np.float32))
    y, mean, invstd = F.batch_norm(x, rm, rv, b, b, training=True, return_stats=True)
    _, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    dyp = arr(*indices.shape)
    params = [nn.Parameter(arr(64, 64)) for _ in range(20)]
    for p in params:
        p.grad = arr(64, 64)
    sgd = optim.SGD(params, lr=0.01, momentum=0.9)
    return {
        "conv2d 3x3 (2,8,8,8)": lambda: F.conv2d(x, w, b, 1, 1),
        "conv2d backward (dx, dw, db)": lambda: F.conv2d_backward(x, x, w, 1, 1),
        "batch_norm train fwd": lambda: F.batch_norm(x, rm, rv, b, b, training=True),
        "batch_norm eval fwd": lambda: F.batch_norm(x, rm, rv, b, b, training=False),
        "batch_norm backward": lambda: F.batch_norm_backward(x, x, b, mean, invstd),
        "max_pool2d 3/2/1 fwd": lambda: F.max_pool2d(x, 3, 2, 1),
        "max_pool2d 3/2/1 bwd": lambda: F.max_pool2d_backward(dyp, x, indices, 3, 2, 1),
        "avg_pool2d 2/2 fwd": lambda: F.avg_pool2d(x, 2, 2),
        "adaptive_avg_pool2d 1": lambda: F.adaptive_avg_pool2d(x, 1),
        "relu fwd": lambda: F.relu(x),
        "relu bwd": lambda: F.relu_backward(y, x),
        "SGD step, 20 tensors": sgd.step,
    }


def _model_step(be):
    """One ResNet-18 training step (forward, cross entropy, backward, SGD with momentum) on a
    (2, 3, 32, 32) batch: the GPU work is small, so its time is the host's, summed over every layer."""
    rng = np.random.default_rng(0)
    x = be.asarray(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    y = be.asarray(rng.integers(0, 10, 2))
    model = resnet18(num_classes=10)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    return step


def _per_call(be, fn, calls: int, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        be.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        be.synchronize()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with gpuconv.backend(args.backend) as be:
        cases = _cases(be)
        stubbed = be.name == "emulated"
        print(f"# host time per call, {be.name} backend, {platform.machine()} {platform.processor() or ''}, "
              f"{args.calls} calls x 5, median (us)")
        header = "| op | us/call |" + (" Python side, kernels stubbed (us) | launches/call |" if stubbed else "")
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
        for name, fn in cases.items():
            row = f"| {name} | {_per_call(be, fn, args.calls):.1f} |"
            if stubbed:
                row += _stubbed_columns(be, fn, args.calls)
            print(row)
        # A whole training step, in ms: on the emulator only its Python side (the kernels would take
        # minutes and say nothing about a GPU), with the GEMMs stubbed too.
        step, steps = _model_step(be), max(3, args.calls // 100)
        name = "ResNet-18 train step (2,3,32,32), ms"
        if stubbed:
            print(f"| {name} | - |" + _stubbed_columns(be, step, steps, scale=1e-3, gemms=True))
        else:
            print(f"| {name} | {_per_call(be, step, steps) * 1e-3:.2f} |")


def _stubbed_columns(be, fn, calls: int, scale: float = 1.0, gemms: bool = False) -> str:
    """The Python side of ``fn`` (its time with the kernels stubbed, times ``scale``) and its launches."""
    with stubbed_kernels(be, gemms=gemms) as counter, np.errstate(all="ignore"):
        fn()  # the stubs' results are garbage: NumPy's warnings about them are noise
        counter.launches = 0
        fn()
        launches = counter.launches
        return f" {_per_call(be, fn, calls) * scale:.{2 if scale != 1 else 1}f} | {launches} |"


if __name__ == "__main__":
    main()
