"""Batch-norm throughput (training forward, eval forward, backward) at ResNet sizes.

    python benchmarks/bench_batchnorm.py [--backend numpy|cupy] [--batch 32] [--repeats 5]

Memory-bound: GB/s counts each tensor read or written once (forward: x + y; backward: x + dy + dx;
the per-channel vectors are negligible), as a percentage of a copy of x in the same run
(device-to-device cudaMemcpy with CUDA events on the GPU, np.copyto on the CPU). Training forward
needs the statistics before it can normalize, so it reads x twice; the GB/s figure still counts it
once. On the CPU also the time ratio to PyTorch CPU in the same run (ratio > 1: gpuconv is slower).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpuconv  # noqa: E402
import gpuconv.functional as F  # noqa: E402
from memory_bound import argument_parser, copy_bandwidth, header, load_torch, row, timer  # noqa: E402

# (C, H, W) of ResNet batch-norm layers: the stem, and the first BN of each stage (ResNet-18/34).
LAYERS = [(64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    be = gpuconv.use(args.backend)
    on_cpu = be.name != "cupy"
    torch, torch_line = load_torch(args.torch_threads) if on_cpu else (None, "GPU run: no PyTorch ratio")
    measure = timer(be)
    header(be, torch_line)
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    for c, h, w in LAYERS:
        shape = (args.batch, c, h, w)
        x = gpuconv.asarray((rng.standard_normal(shape) * 2 + 1).astype(dtype))
        dy = gpuconv.asarray(rng.standard_normal(shape).astype(dtype))
        weight = gpuconv.asarray(rng.uniform(0.5, 1.5, c).astype(dtype))
        bias = gpuconv.asarray(rng.standard_normal(c).astype(dtype))
        rm = gpuconv.asarray(np.zeros(c, dtype))
        rv = gpuconv.asarray(np.ones(c, dtype))
        _, mean, invstd = F.batch_norm(x, None, None, weight, bias, training=True, return_stats=True)
        copy_bw = copy_bandwidth(be, x, measure, args.repeats)
        print(f"batch_norm {'x'.join(map(str, shape))} {dtype.name}: copy {copy_bw / 1e9:.2f} GB/s")
        ops = [
            ("training forward (+running stats)", lambda: F.batch_norm(x, rm, rv, weight, bias, training=True),
             2 * x.nbytes),
            ("eval forward", lambda: F.batch_norm(x, rm, rv, weight, bias, training=False), 2 * x.nbytes),
            ("backward (dx, dweight, dbias)", lambda: F.batch_norm_backward(dy, x, weight, mean, invstd),
             3 * x.nbytes),
        ]
        torch_ops = [None, None, None]
        if torch is not None:
            tx, tdy, tw, tb = (torch.from_numpy(gpuconv.to_numpy(a)) for a in (x, dy, weight, bias))
            trm, trv = torch.zeros(c, dtype=tx.dtype), torch.ones(c, dtype=tx.dtype)
            _, tmean, tinvstd = torch.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, 1e-5)
            torch_ops = [
                lambda: torch.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, 1e-5),
                lambda: torch.native_batch_norm(tx, tw, tb, trm, trv, False, 0.1, 1e-5),
                lambda: torch.ops.aten.native_batch_norm_backward(tdy, tx, tw, trm, trv, tmean, tinvstd, True, 1e-5,
                                                                  [True, True, True]),
            ]
        for (label, fn, moved), torch_fn in zip(ops, torch_ops):
            seconds = measure(fn, args.repeats)
            torch_seconds = measure(torch_fn, args.repeats) if torch_fn else None
            row("  " + label, seconds, moved, copy_bw, torch_seconds, show_torch=on_cpu)
        be.synchronize()


if __name__ == "__main__":
    main()
