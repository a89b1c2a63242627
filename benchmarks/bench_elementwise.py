"""Throughput of the fused elementwise kernels: ReLU forward/backward, dropout, optimizer steps.

    python benchmarks/bench_elementwise.py [--backend numpy|emulated|cupy] [--batch 32] [--repeats 5]

Memory-bound: GB/s counts each tensor read or written once (ReLU forward: x + y; backward: dy + x +
dx; an optimizer step over ResNet-18's parameters: parameters read and written, gradients read,
each state read and written), as a percentage of a copy of the largest tensor in the same run.
With PyTorch importable, also PyTorch's time for the same work on the same device (its CUDA kernels
on cupy: torch.relu, threshold_backward, torch.optim with foreach=True; its CPU ones otherwise)
and the ratio gpuconv / PyTorch (> 1: gpuconv is slower).
"""

from __future__ import annotations

import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpuconv  # noqa: E402
import gpuconv.functional as F  # noqa: E402
from gpuconv import optim  # noqa: E402
from gpuconv.models import resnet18  # noqa: E402
from memory_bound import argument_parser, copy_bandwidth, load_torch, machine, row, timer  # noqa: E402

# (C, H, W) of ReLU inputs in ResNet-18: after the stem and in the last stage.
RELU_LAYERS = [(64, 112, 112), (256, 14, 14), (512, 7, 7)]


class _Param:
    def __init__(self, data, grad):
        self.data, self.grad = data, grad


def _torch_timer(torch, device):
    """measure(fn, repeats) for PyTorch work on ``device``: CUDA events on the GPU, wall clock on the CPU."""
    import time

    def measure(fn, repeats):
        fn()
        times = []
        for _ in range(repeats):
            if device == "cuda":
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                times.append(start.elapsed_time(stop) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return measure


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    be = gpuconv.use(args.backend)
    torch, torch_line = load_torch(args.torch_threads)
    device = "cuda" if be.name == "cupy" else "cpu"
    if torch is not None and device == "cuda" and not torch.cuda.is_available():
        torch, torch_line = None, "torch without CUDA: no PyTorch ratio"
    measure = timer(be)
    torch_measure = _torch_timer(torch, device) if torch is not None else None
    print(f"backend: {be.name}; {machine(be)}; {torch_line}")
    print(f"{'case':44s} {'ms':>9s} {'GB/s':>8s} {'% copy':>7s}  torch ms  ratio")
    rng = np.random.default_rng(0)

    def as_torch(a):
        return torch.as_tensor(gpuconv.to_numpy(a)).to(device)

    for c, h, w in RELU_LAYERS:
        shape = (args.batch, c, h, w)
        x = gpuconv.asarray(rng.standard_normal(shape).astype(np.float32))
        dy = gpuconv.asarray(rng.standard_normal(shape).astype(np.float32))
        copy_bw = copy_bandwidth(be, x, measure, args.repeats)
        name = "x".join(map(str, shape))
        cases = [(f"relu forward {name}", lambda: F.relu(x), 2 * x.nbytes),
                 (f"relu backward {name}", lambda: F.relu_backward(dy, x), 3 * x.nbytes),
                 (f"dropout 0.5 forward {name}", lambda: F.dropout(x, 0.5), 3 * x.nbytes)]
        torch_cases = [None, None, None]
        if torch is not None:
            tx, tdy = as_torch(x), as_torch(dy)
            torch_cases = [lambda: torch.relu(tx), lambda: torch.ops.aten.threshold_backward(tdy, tx, 0.0),
                           lambda: torch.nn.functional.dropout(tx, 0.5)]
        for (label, fn, nbytes), tfn in zip(cases, torch_cases, strict=True):
            seconds = measure(fn, args.repeats)
            row(label, seconds, nbytes, copy_bw, torch_measure(tfn, args.repeats) if tfn else None)

    with gpuconv.backend(be.name):
        shapes = [tuple(p.data.shape) for p in resnet18().parameters()]
    params = [_Param(gpuconv.asarray(rng.standard_normal(s).astype(np.float32)),
                     gpuconv.asarray(rng.standard_normal(s).astype(np.float32))) for s in shapes]
    numel = sum(int(np.prod(s)) for s in shapes)
    largest = max(params, key=lambda p: p.data.size).data
    copy_bw = copy_bandwidth(be, largest, measure, args.repeats)
    for label, make, torch_make, states in (
            ("SGD momentum step", lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9),
             lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=True), 1),
            ("Adam step", lambda ps: optim.Adam(ps, lr=1e-3), lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
             2)):
        opt = make(params)
        seconds = measure(opt.step, args.repeats)
        torch_seconds = None
        if torch is not None:
            tparams = [torch.nn.Parameter(as_torch(p.data)) for p in params]
            for tp, p in zip(tparams, params, strict=True):
                tp.grad = as_torch(p.grad)
            topt = torch_make(tparams)
            torch_seconds = torch_measure(topt.step, args.repeats)
        nbytes = 4 * numel * (3 + 2 * states)
        row(f"{label}, ResNet-18 ({len(shapes)} tensors, {numel / 1e6:.1f} M)", seconds, nbytes, copy_bw,
            torch_seconds)


if __name__ == "__main__":
    main()
