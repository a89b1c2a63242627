"""Memory-access profile of the convolution kernels (im2col.cu, conv_direct.cu, conv_implicit_gemm.cu)
on the emulated backend, no GPU needed.

    python benchmarks/emu_profile_conv.py [--out FILE]

Runs, inside ``gpuconv.backend.emulated.profile()``, the forward and backward of every convolution
algorithm at the shape of ``benchmarks/emu_profile.py`` (x (2, 16, 16, 16), weight (32, 16, 3, 3),
padding 1, float32), plus the same layer at stride 2 (where im2col's stride-2 paths run) and at
padding 0 on an 18x18 input, and prints one per-kernel table per setting. The counts depend on
the shapes, the launch configuration and the code, not on the machine, so the table of one commit
compares with another's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

import gpuconv
import gpuconv.backend.emulated as emulated
import gpuconv.functional as F
from gpuconv.functional.conv import conv_geometry

CONV_X, CONV_W = (2, 16, 16, 16), (32, 16, 3, 3)
ALGOS = ("im2col", "direct", "implicit_gemm")
# (stride, padding) of the tables. Padding 0 (on an 18x18 input: the same 16x16 output) is there
# because a lane that skips a load (a padded tap) shifts the emulator's per-lane count of visits to
# that instruction, so later requests mix lanes of different iterations: with padding, gathers
# look less coalesced than they are.
SETTINGS = ((1, 1), (2, 1), (1, 0))


def cases(rng: np.random.Generator, stride: int, padding: int) -> Iterator[tuple[str, Callable[[], object]]]:
    """(label, call) for each convolution op the table of ``stride`` and ``padding`` covers."""
    # Without padding the input grows by the 2 pixels the padding gave, so the output stays 16x16
    # (OW a multiple of 4: im2col's v4 runs).
    n, c, h, w_ = CONV_X
    x = rng.standard_normal((n, c, h + 2 - 2 * padding, w_ + 2 - 2 * padding)).astype(np.float32)
    w = rng.standard_normal(CONV_W).astype(np.float32)
    oh = (x.shape[2] + 2 * padding - 3) // stride + 1
    dy = rng.standard_normal((CONV_X[0], CONV_W[0], oh, oh)).astype(np.float32)
    for algo in ALGOS:
        yield f"{algo} forward", lambda algo=algo: F.conv2d(x, w, stride=stride, padding=padding, algo=algo)
        yield f"{algo} backward", lambda algo=algo: F.conv2d_backward(dy, x, w, stride=stride, padding=padding,
                                                                     algo=algo)
    if (stride, padding) == (1, 1):
        geometry = conv_geometry(x.shape, w.shape, padding=1)
        yield "direct forward v1", lambda: gpuconv.get_backend().conv2d_direct_forward(x, w, None, geometry,
                                                                                      version=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    parts = []
    with gpuconv.backend("emulated"):
        for stride, padding in SETTINGS:
            ops = list(cases(np.random.default_rng(0), stride, padding))
            with emulated.profile() as table:
                for _, call in ops:
                    call()
            parts.append(f"### Stride {stride}, padding {padding}\n\nOps: " + ", ".join(label for label, _ in ops)
                         + ".\n\n" + table.to_markdown() + "\n")
    report = "\n".join(parts)
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
