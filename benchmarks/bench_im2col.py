"""im2col / col2im throughput on the current backend, against a plain copy of the same bytes.

    python benchmarks/bench_im2col.py [--backend numpy|cupy|emulated] [--repeats 5]

im2col and col2im are memory-bound: the figure of merit is GB/s (input read once plus columns
written once, or the reverse), reported as a percentage of a copy of the columns measured in the
same run (np.copyto on the CPU; a device-to-device copy timed with CUDA events on the GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gpuconv  # noqa: E402
import gpuconv.functional as F  # noqa: E402
from memory_bound import copy_bandwidth, machine, row, timer  # noqa: E402

# (name, N, C, H, W, kernel, stride, padding): ResNet-18 / VGG-16 layers at batch 8.
LAYERS = [
    ("resnet18.layer1 3x3", 8, 64, 56, 56, 3, 1, 1),
    ("resnet18.layer2 3x3/2", 8, 64, 56, 56, 3, 2, 1),
    ("resnet18.layer3 3x3", 8, 256, 14, 14, 3, 1, 1),
    ("vgg16.conv3_1 3x3", 8, 128, 56, 56, 3, 1, 1),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    be = gpuconv.use(args.backend)
    measure = timer(be)
    print(f"backend: {be.name}; {machine(be)}")
    print(f"{'case':44s} {'ms':>9s} {'GB/s':>8s} {'% copy':>7s}")
    for name, n, c, h, w, k, s, p in LAYERS:
        x = gpuconv.asarray(np.random.default_rng(0).standard_normal((n, c, h, w), dtype=np.float32))
        cols = F.im2col(x, k, stride=s, padding=p, layout="knl")
        copy_bw = copy_bandwidth(be, cols, measure, args.repeats)
        nbytes = x.nbytes + cols.nbytes
        row(f"{name} im2col", measure(lambda: F.im2col(x, k, stride=s, padding=p, layout="knl"), args.repeats),
            nbytes, copy_bw, show_torch=False)
        row(f"{name} col2im", measure(lambda: F.col2im(cols, (h, w), k, stride=s, padding=p, layout="knl"),
                                      args.repeats), nbytes, copy_bw, show_torch=False)


if __name__ == "__main__":
    main()
