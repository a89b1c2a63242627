"""Pooling throughput (max, average, adaptive, GeM) at ResNet sizes on the current backend.

    python benchmarks/bench_pool.py [--backend numpy|cupy] [--batch 32] [--repeats 5]

Memory-bound: GB/s counts each tensor read or written once (e.g. max pooling forward: x + y, plus
the int64 indices when returned; backward: dy + indices + dx), as a percentage of a copy of x in
the same run (device-to-device cudaMemcpy with CUDA events on the GPU, np.copyto on the CPU). On
the CPU also the time ratio to PyTorch CPU in the same run (ratio > 1: gpuconv is slower).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpuconv  # noqa: E402
import gpuconv.functional as F  # noqa: E402
from memory_bound import argument_parser, copy_bandwidth, header, load_torch, row, timer  # noqa: E402


def nbytes(*arrays) -> int:
    return sum(int(a.nbytes) for a in arrays)


def cases(n, be, rng):
    """(name, x, [(label, gpuconv fn, torch fn or None, bytes)]) per input tensor."""
    def arr(shape):
        return gpuconv.asarray(rng.standard_normal(shape, dtype=np.float32))

    x = arr((n, 64, 112, 112))
    y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    dy = arr(y.shape)
    yield f"max_pool2d 3/2/1 {n}x64x112x112", x, [
        ("forward", lambda: F.max_pool2d(x, 3, 2, 1),
         lambda t: lambda: t.nn.functional.max_pool2d(t.from_numpy(x), 3, 2, 1), nbytes(x, y)),
        ("forward+indices", lambda: F.max_pool2d(x, 3, 2, 1, return_indices=True),
         lambda t: lambda: t.nn.functional.max_pool2d(t.from_numpy(x), 3, 2, 1, return_indices=True),
         nbytes(x, y, idx)),
        ("backward", lambda: F.max_pool2d_backward(dy, x, idx, 3, 2, 1),
         lambda t: lambda: t.ops.aten.max_pool2d_with_indices_backward(
             t.from_numpy(dy), t.from_numpy(x), [3, 3], [2, 2], [1, 1], [1, 1], False, t.from_numpy(idx)),
         nbytes(dy, idx, x)),
    ]

    x = arr((n, 256, 56, 56))
    y = F.avg_pool2d(x, 2)
    dy = arr(y.shape)
    yield f"avg_pool2d 2/2 {n}x256x56x56", x, [
        ("forward", lambda: F.avg_pool2d(x, 2),
         lambda t: lambda: t.nn.functional.avg_pool2d(t.from_numpy(x), 2), nbytes(x, y)),
        ("backward", lambda: F.avg_pool2d_backward(dy, x.shape, 2),
         lambda t: lambda: t.ops.aten.avg_pool2d_backward(t.from_numpy(dy), t.from_numpy(x), [2, 2], [2, 2], [0, 0],
                                                           False, True, None), nbytes(dy, x)),
    ]

    x = arr((n, 2048, 7, 7))
    y = F.adaptive_avg_pool2d(x, 1)
    dy = arr(y.shape)
    p = gpuconv.asarray(np.array([3.0], dtype=np.float32))
    xg = gpuconv.asarray(np.abs(gpuconv.to_numpy(x)))
    yield f"adaptive/GeM global {n}x2048x7x7", x, [
        ("adaptive_avg_pool2d forward", lambda: F.adaptive_avg_pool2d(x, 1),
         lambda t: lambda: t.nn.functional.adaptive_avg_pool2d(t.from_numpy(x), 1), nbytes(x, y)),
        ("adaptive_avg_pool2d backward", lambda: F.adaptive_avg_pool2d_backward(dy, x.shape, 1),
         lambda t: lambda: t.ops.aten._adaptive_avg_pool2d_backward(t.from_numpy(dy), t.from_numpy(x)),
         nbytes(dy, x)),
        ("adaptive_max_pool2d forward", lambda: F.adaptive_max_pool2d(x, 1),
         lambda t: lambda: t.nn.functional.adaptive_max_pool2d(t.from_numpy(x), 1), nbytes(x, y)),
        ("gem forward (p=3 learnable)", lambda: F.gem(xg, p),
         lambda t: lambda: t.from_numpy(xg).clamp(min=1e-6).pow(t.from_numpy(p)).mean((2, 3), keepdim=True)
         .pow(1.0 / t.from_numpy(p)), nbytes(x, y)),
        ("gem backward (dx, dp)", lambda: F.gem_backward(dy, xg, p), None, nbytes(dy, x, x)),
    ]


def main() -> None:
    parser = argument_parser(__doc__)
    args = parser.parse_args()
    be = gpuconv.use(args.backend)
    on_cpu = be.name != "cupy"
    torch, torch_line = load_torch(args.torch_threads) if on_cpu else (None, "GPU run: no PyTorch ratio")
    measure = timer(be)
    header(be, torch_line)
    for title, x, ops in cases(args.batch, be, np.random.default_rng(0)):
        copy_bw = copy_bandwidth(be, x, measure, args.repeats)
        print(f"{title}: copy {copy_bw / 1e9:.2f} GB/s")
        for label, fn, torch_fn, moved in ops:
            seconds = measure(fn, args.repeats)
            torch_seconds = measure(torch_fn(torch), args.repeats) if (torch and torch_fn) else None
            row("  " + label, seconds, moved, copy_bw, torch_seconds, show_torch=on_cpu)
        be.synchronize()


if __name__ == "__main__":
    main()
