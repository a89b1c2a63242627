"""Memory-access profile of every kernel in kernels/, on the emulated backend (no GPU needed).

    python benchmarks/emu_profile.py [--out benchmarks/results/emu-access-profile.md]

Runs each kernel family (im2col, direct convolution, pooling, batch normalization; forward and
backward, float32) at a small ResNet-like shape inside ``gpuconv.backend.emulated.profile()`` and
prints one row per kernel: warp-level requests, 32-byte sectors per request against the ideal (4
for a 32-lane float request, 16 for float4), shared-memory wavefronts per request, bank conflicts
and a static count of integer divisions. The counts depend on the shapes and the launch
configuration, not on the machine: the tables before and after the speed work on im2col, pooling
and batch norm are in benchmarks/results/emu-access-profile-*.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

import gpuconv
import gpuconv.backend.emulated as emulated
import gpuconv.functional as F
from gpuconv.functional.conv import conv_geometry
from gpuconv.backend.kernel_source import kernel_files
from gpuconv.backend.signature import parse_signatures

N, C, H, W = 2, 32, 28, 28  # pooling and batch norm input
CONV_X, CONV_W = (2, 16, 16, 16), (32, 16, 3, 3)


def cases(rng: np.random.Generator) -> Iterator[tuple[str, Callable[[], object]]]:
    """(label, call) for every op whose kernels the profile covers."""
    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x, w = arr(*CONV_X), arr(*CONV_W)
    dy = arr(CONV_X[0], CONV_W[0], CONV_X[2], CONV_X[3])
    for algo in ("im2col", "direct"):
        yield f"conv2d {algo} 3x3 pad 1", lambda algo=algo: F.conv2d(x, w, padding=1, algo=algo)
        yield f"conv2d_backward {algo}", lambda algo=algo: F.conv2d_backward(dy, x, w, padding=1, algo=algo)
    # The reference version of the direct forward kernel, which conv2d no longer picks.
    geometry = conv_geometry(x.shape, w.shape, padding=1)
    yield "conv2d direct forward v1", lambda: gpuconv.get_backend().conv2d_direct_forward(x, w, None, geometry, version=1)
    p = arr(N, C, H, W)
    y, idx = F.max_pool2d(p, 3, 2, 1, return_indices=True)
    dyp = arr(*y.shape)
    yield "max_pool2d 3/2/1", lambda: F.max_pool2d(p, 3, 2, 1, return_indices=True)
    yield "max_pool2d_backward", lambda: F.max_pool2d_backward(dyp, p, idx, 3, 2, 1)
    ya = F.avg_pool2d(p, 2, 2)
    yield "avg_pool2d 2/2", lambda: F.avg_pool2d(p, 2, 2)
    yield "avg_pool2d_backward", lambda: F.avg_pool2d_backward(arr(*ya.shape), p.shape, 2, 2)
    yield "adaptive_avg_pool2d 1", lambda: F.adaptive_avg_pool2d(p, 1)
    yield "adaptive_avg_pool2d_backward", lambda: F.adaptive_avg_pool2d_backward(arr(N, C, 1, 1), p.shape, 1)
    ym, im = F.adaptive_max_pool2d(p, 1, return_indices=True)
    yield "adaptive_max_pool2d 1", lambda: F.adaptive_max_pool2d(p, 1, return_indices=True)
    yield "adaptive_max_pool2d_backward", lambda: F.adaptive_max_pool2d_backward(arr(*ym.shape), p, im, 1)
    pos = np.abs(p) + 0.1
    yield "gem global", lambda: F.gem(pos, 3.0)
    yield "gem_backward", lambda: F.gem_backward(arr(N, C, 1, 1), pos, 3.0)
    gamma, beta = arr(C), arr(C)
    mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)
    yb, save_mean, save_invstd = F.batch_norm(p, mean, var, gamma, beta, training=True, return_stats=True)
    yield "batch_norm training", lambda: F.batch_norm(p, mean.copy(), var.copy(), gamma, beta, training=True)
    yield "batch_norm eval", lambda: F.batch_norm(p, mean, var, gamma, beta, training=False)
    yield "batch_norm_backward", lambda: F.batch_norm_backward(arr(*yb.shape), p, gamma, save_mean, save_invstd)


def all_kernel_names() -> dict[str, str]:
    """Every float32 entry point in kernels/*.cu -> its file."""
    names = {}
    for path in kernel_files():
        for name in parse_signatures(path.read_text(), path.name):
            if name.endswith("_f32"):
                names[name] = path.name
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--note", help="one line saying what the table is, e.g. before or after which change")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with gpuconv.backend("emulated"):
        ops = list(cases(rng))  # the inputs above ran unprofiled
        with emulated.profile() as table:
            for _, call in ops:
                call()
    missing = sorted(set(all_kernel_names()) - set(table.kernels))
    lines = [
        "# Memory-access profile of the CUDA kernels (emulated backend, no GPU)",
        "",
        f"- Date: {datetime.date.today()}; {platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}. The counts do not depend on the machine.",
        f"- Command: `PYTHONPATH=. python benchmarks/emu_profile.py --out {args.out or '<file>'}`",
        f"- Shapes: convolution x {CONV_X}, weight {CONV_W}, padding 1; pooling and batch norm x "
        f"{(N, C, H, W)}; float32. Ops run: " + ", ".join(label for label, _ in ops) + ".",
        "- A request is one instruction executed by a warp's lanes. Sectors/request: 32-byte sectors of "
        "global memory it touches, with the ideal in parentheses (the distinct bytes / 32: 4 for 32 lanes "
        "reading consecutive floats); efficiency = ideal / actual. Shared: wavefronts per request (the most "
        "distinct 4-byte words one of the 32 banks serves) and the extra wavefronts over the ideal (bank "
        "conflicts). Arrays are taken as 256-byte aligned, as cudaMalloc's are.",
        "- A copy of a CUDA vector type (float4, double2, float2) is one request of its width: 16 sectors "
        "ideal for 32 lanes of float4; shared-memory 64/128-bit requests are served by half/quarter-warp "
        "phases. Int divisions: the x86 div/idiv instructions (divisions and modulos by run-time values; "
        "by constants they become multiplications, as on a GPU) in the kernel's code and its callees, "
        "counted statically (each instruction once, not per execution), 32-bit / 64-bit.",
        "- This is a proxy for memory efficiency only: it says nothing about latency hiding, occupancy, "
        "caches or arithmetic.",
        *([f"- {args.note}"] if args.note else []),
        "",
        table.to_markdown(),
        "",
        "Kernels not launched by these ops (float64 twins are not listed): " + (", ".join(missing) or "none") + ".",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
