"""im2col / col2im throughput on the current backend, against a plain copy of the same bytes.

    python benchmarks/bench_im2col.py [--backend numpy|cupy|emulated] [--repeats 5]

im2col and col2im are memory-bound: the figure of merit is GB/s (input read once plus columns
written once, or the reverse), reported as a percentage of a copy of the columns' bytes measured
in the same run (np.copyto on the CPU; a device-to-device copy on the GPU, timed with CUDA events).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import gpuconv
import gpuconv.functional as F

# (name, N, C, H, W, kernel, stride, padding): ResNet-18 / VGG layers at batch 8.
LAYERS = [
    ("resnet18.layer1 3x3", 8, 64, 56, 56, 3, 1, 1),
    ("resnet18.layer2 3x3/2", 8, 64, 56, 56, 3, 2, 1),
    ("resnet18.layer3 3x3", 8, 256, 14, 14, 3, 1, 1),
    ("vgg16.conv3_1 3x3", 8, 128, 56, 56, 3, 1, 1),
]


def timer(be):
    """Median seconds of fn() over repeats, after one warm-up call."""
    if be.name == "cupy":
        import cupy

        def measure(fn, repeats):
            fn()
            times = []
            for _ in range(repeats):
                start, stop = cupy.cuda.Event(), cupy.cuda.Event()
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
            return statistics.median(times)
    else:
        def measure(fn, repeats):
            fn()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)
    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    be = gpuconv.use(args.backend)
    measure = timer(be)
    print(f"backend: {be.name}")
    print(f"{'layer':26s} {'op':7s} {'ms':>9s} {'GB/s':>8s} {'% copy':>7s}")
    for name, n, c, h, w, k, s, p in LAYERS:
        x = gpuconv.asarray(np.random.default_rng(0).standard_normal((n, c, h, w), dtype=np.float32))
        cols = F.im2col(x, k, stride=s, padding=p, layout="knl")
        scratch = be.empty(cols.shape, cols.dtype)
        copy_s = measure(lambda: be.xp.copyto(scratch, cols), args.repeats)
        copy_bw = 2 * cols.nbytes / copy_s
        for op, fn in (("im2col", lambda: F.im2col(x, k, stride=s, padding=p, layout="knl")),
                       ("col2im", lambda: F.col2im(cols, (h, w), k, stride=s, padding=p, layout="knl"))):
            seconds = measure(fn, args.repeats)
            bandwidth = (x.nbytes + cols.nbytes) / seconds
            print(f"{name:26s} {op:7s} {seconds * 1e3:9.2f} {bandwidth / 1e9:8.2f} {100 * bandwidth / copy_bw:6.0f}%")


if __name__ == "__main__":
    main()
