"""im2col / col2im kernel versions timed side by side, as a % of a device-to-device copy.

    python benchmarks/gpu_im2col_versions.py [--backend cupy|emulated] [--batch 32] [--shrink 1]

The launcher (gpuconv/backend/cuda/im2col.py) picks v4 at horizontal stride 1 and v2 elsewhere
from the emulator's access profile (benchmarks/emu_im2col_versions.py), which counts memory
sectors but not instructions: v4 trades v3's second load per tap for a ballot, shuffles and
selects, and v2's per-pixel loads for all three. This script gives the GPU's answer. For ResNet
and VGG layers (3x3: stride 1 "same" and "valid", stride 2; layout "knl", float32) it times every
version that applies (v2; v3 with its vector loads; v4) forward and backward, interleaved (CUDA
events; the median of the repeats), and prints milliseconds and the bandwidth (x and the columns
once each) as a % of a copy of the columns timed in the same run (bytes read + written). On the
emulated backend the times mean nothing: ``--backend emulated --batch 1 --shrink 8`` is a smoke run.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np

import gpuconv
from gpuconv.bench.timing import copy_function, interleaved, timed_call

# (channels, size, kernel, stride, padding): ResNet-18's 3x3 layers, a "valid" 3x3 (OW = 56, W = 58), VGG's conv1_2.
LAYERS = ((64, 56, 3, 1, 1), (128, 28, 3, 1, 1), (256, 14, 3, 1, 1), (64, 58, 3, 1, 0), (64, 56, 3, 2, 1),
          (128, 28, 3, 2, 1), (64, 224, 3, 1, 1))
VERSIONS = (2, 3, 4)


def _applies(call) -> bool:
    try:
        call()
    except ValueError:
        return False
    return True


def measure(be, batch: int, shrink: int, repeats: int) -> list[str]:
    """Markdown rows: per layer and direction, each version's time and % of a copy, and the default's version."""
    rng = np.random.default_rng(0)
    timed = timed_call(be)
    rows = ["| op | x | kernel, stride, padding | " + " | ".join(f"v{v} ms (% of copy)" for v in VERSIONS)
            + " | default |", "|---|---|---|" + "---|" * (len(VERSIONS) + 1)]
    for c, size, k, s, p in LAYERS:
        c, size = max(1, c // shrink), max(k, size // shrink)
        x = gpuconv.asarray(rng.standard_normal((batch, c, size, size)).astype(np.float32))
        out = ((size + 2 * p - k) // s + 1,) * 2
        args = ((k, k), (s, s), (p, p), (1, 1), out, "knl")
        cols = be.im2col(x, *args)
        copy = copy_function(be, cols)
        nbytes = x.nbytes + cols.nbytes
        for op, call in (("im2col", lambda **kw: be.im2col(x, *args, **kw)),
                         ("col2im", lambda **kw: be.col2im(cols, x.shape, *args, **kw))):
            versions = [v for v in VERSIONS if _applies(lambda v=v: call(version=v))]
            fns = [lambda: timed(copy)] + [lambda v=v: timed(lambda: call(version=v)) for v in versions]
            stats = interleaved(fns, warmup=2, repeats=repeats)
            copy_rate = 2 * cols.nbytes / stats[0].median
            cells = {v: f"{st.median * 1e3:.3f} ({100 * nbytes / st.median / copy_rate:.0f}%)"
                     for v, st in zip(versions, stats[1:], strict=True)}
            default = _default_version(be, call)
            rows.append(f"| {op} | {tuple(x.shape)} | {k}, {s}, {p} | "
                        + " | ".join(cells.get(v, "n/a") for v in VERSIONS) + f" | v{default} |")
    return rows


def _default_version(be, call) -> str:
    """The version of the kernel the launcher runs for ``call()`` by default."""
    launched: list[str] = []
    original = be.kernel

    def recording(filename, op, dtype, defines=None):
        launched.append(op)
        return original(filename, op, dtype, defines)

    # An instance attribute over the class's method, removed below; the launcher's cached launch
    # plans are set aside meanwhile, so that the call looks its kernel up.
    saved_plans = be.__dict__.pop("_im2col_plans", None)
    be.kernel = recording
    try:
        call()
    finally:
        del be.kernel
        if saved_plans is not None:
            be._im2col_plans = saved_plans
    return re.search(r"_v(\d+)_", launched[-1]).group(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cupy", choices=("cupy", "emulated"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shrink", type=int, default=1, help="divide channels and planes (a quick run)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with gpuconv.backend(args.backend) as be:
        print(f"backend {be.name}, batch {args.batch}, float32, layout knl")
        print("\n".join(measure(be, args.batch, args.shrink, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
