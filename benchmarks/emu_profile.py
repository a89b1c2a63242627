"""Memory-access profile of every kernel in kernels/, on the emulated backend (no GPU needed).

    python benchmarks/emu_profile.py [--out benchmarks/results/emu-access-profile.md]

Runs every kernel family (im2col/col2im in each version, direct and implicit-GEMM convolution with
and without TF32, the bias epilogue, pooling, batch normalization, ReLU, dropout, the arithmetic,
loss, softmax and multi-tensor optimizer kernels; forward and backward, float32) at small
ResNet-like shapes inside ``gpuconv.backend.emulated.profile()`` and
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
    yw = F.gem(pos, 3.0, kernel_size=3, stride=2)
    yield "gem 3/2 and backward (tiled v2)", lambda: (F.gem(pos, 3.0, kernel_size=3, stride=2),
                                                       F.gem_backward(arr(*yw.shape), pos, 3.0, kernel_size=3, stride=2))
    gamma, beta = arr(C), arr(C)
    mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)
    yb, save_mean, save_invstd = F.batch_norm(p, mean, var, gamma, beta, training=True, return_stats=True)
    yield "batch_norm training", lambda: F.batch_norm(p, mean.copy(), var.copy(), gamma, beta, training=True)
    yield "batch_norm eval", lambda: F.batch_norm(p, mean, var, gamma, beta, training=False)
    yield "batch_norm_backward", lambda: F.batch_norm_backward(arr(*yb.shape), p, gamma, save_mean, save_invstd)
    yield from more_cases(arr, x, w, dy, p, idx, gamma, beta)


def more_cases(arr, x, w, dy, p, idx, gamma, beta) -> Iterator[tuple[str, Callable[[], object]]]:
    """The kernels the cases above leave out: other versions and index widths, the implicit GEMM's
    tiles, the elementwise, loss, softmax and optimizer kernels."""
    backend = gpuconv.get_backend()
    bias = arr(CONV_W[0])
    yield "conv2d im2col with bias (epilogue)", lambda: F.conv2d(x, w, bias, padding=1, algo="im2col")
    yield "conv2d_backward im2col stride 2", lambda: F.conv2d_backward(
        arr(CONV_X[0], CONV_W[0], 8, 8), x, w, stride=2, padding=1, algo="im2col")
    layout_args = ((3, 3), (1, 1), (1, 1), (1, 1), (16, 16))
    cols = backend.im2col(x, *layout_args, "cn")
    for version, bits in ((1, None), (2, 32), (2, 64), (3, 32), (3, 64), (4, 64)):
        label = f"im2col/col2im v{version}" + (f" {bits}-bit" if bits else "")
        yield label, lambda version=version, bits=bits: (
            backend.im2col(x, *layout_args, "cn", version=version, index_bits=bits),
            backend.col2im(cols, x.shape, *layout_args, "cn", version=version, index_bits=bits))
    big_x, big_w = arr(2, 64, 16, 16), arr(64, 64, 3, 3)
    big_dy = arr(2, 64, 16, 16)
    for tf32 in (False, True):
        for label, xx, ww, dd in (("16->32", x, w, dy), ("64->64", big_x, big_w, big_dy)):
            def run(xx=xx, ww=ww, dd=dd, tf32=tf32):
                with gpuconv.flags(allow_tf32=tf32):
                    F.conv2d(xx, ww, padding=1, algo="implicit_gemm")
                    F.conv2d_backward(dd, xx, ww, padding=1, algo="implicit_gemm")
            yield f"implicit_gemm {label}" + (" tf32" if tf32 else ""), run
    # The medium and large tiles, forced at the small shape (the launcher picks them for GEMMs that
    # fill a GPU, too slow to emulate): their loads, stores and shared accesses, partly idle tiles.
    g_big = conv_geometry(big_x.shape, big_w.shape, padding=1)
    for tile in ("medium", "large", "tc_large"):
        def run_tile(tile=tile):
            with gpuconv.flags(allow_tf32=tile.startswith("tc_")):
                backend.conv2d_implicit_gemm_forward(big_x, big_w, None, g_big, tile=tile)
                backend.conv2d_implicit_gemm_backward_data(big_dy, big_w, g_big, tile=tile)
                backend.conv2d_implicit_gemm_backward_weight(big_dy, big_x, g_big, tile=tile)
        yield f"implicit_gemm 64->64 {tile} tile (forced)", run_tile
    g1 = conv_geometry(x.shape, w.shape, padding=1)
    g2 = conv_geometry(x.shape, w.shape, stride=2, padding=1)
    dy2 = arr(CONV_X[0], CONV_W[0], 8, 8)
    yield "direct backward v1", lambda: (backend.conv2d_direct_backward_data(dy, w, g1, version=1),
                                         backend.conv2d_direct_backward_weight(dy, x, g1, version=1))
    yield "direct backward_data stride 2 (v3)", lambda: backend.conv2d_direct_backward_data(dy2, w, g2)
    yield "max_pool2d without indices (int32 positions)", lambda: F.max_pool2d(p, 3, 2, 1)
    yield "pooling v1 forwards and backwards (no shared-memory tile)", lambda: untiled_pooling(arr(1, 8, 20, 20))
    yield "max_pool2d_backward int32", lambda: F.max_pool2d_backward(arr(*idx.shape), p, idx.astype(np.int32), 3, 2, 1)
    ym32, im32 = F.adaptive_max_pool2d(p, 1, return_indices=True, index_dtype=np.int32)
    yield "adaptive_max_pool2d int32 indices, backward", lambda: (
        F.adaptive_max_pool2d(p, 1, return_indices=True, index_dtype=np.int32),
        F.adaptive_max_pool2d_backward(arr(*ym32.shape), p, im32, 1))
    # Large planes: batch norm's two-pass path (statistics split over many blocks).
    pb = arr(4, 4, 128, 128)
    gb, bb = arr(4), arr(4)
    yb, sm, si = F.batch_norm(pb, np.zeros(4, np.float32), np.ones(4, np.float32), gb, bb, training=True,
                              return_stats=True)
    yield "batch_norm training, large planes", lambda: F.batch_norm(
        pb, np.zeros(4, np.float32), np.ones(4, np.float32), gb, bb, training=True)
    yield "batch_norm_backward, large planes", lambda: F.batch_norm_backward(arr(*pb.shape), pb, gb, sm, si)
    yield "relu / relu_backward", lambda: (F.relu(p), F.relu_backward(p, p))
    yield "leaky_relu / backward", lambda: (F.leaky_relu(p), F.leaky_relu_backward(p, p))
    yield "dropout / backward", lambda: F.dropout_backward(p, F.dropout(p, 0.5, return_mask=True)[1], 0.5)
    yield "add / add_ / fill_ / copy", lambda: (backend.add(p, p), backend.add_(p.copy(), p),
                                                backend.fill_(p.copy(), 0.0), backend.contiguous(p.transpose(0, 2, 1, 3)))
    logits, target = arr(64, 100), np.arange(64) % 100
    h, lw, lb = arr(64, 256), arr(100, 256), arr(100)
    yield "linear with bias, backward", lambda: (F.linear(h, lw, lb), F.linear_backward(logits, h, lw, (True, True, True)))
    yield "cross_entropy / backward", lambda: (F.cross_entropy(logits, target),
                                               F.cross_entropy_backward(np.float32(1.0), logits, target))
    target32 = target.astype(np.int32)
    total, correct = np.zeros(1, np.float64), np.zeros(1, np.int64)
    yield "cross_entropy int32 targets, fit's meters", lambda: (
        F.cross_entropy_backward(np.float32(1.0), logits, target32),
        backend.accumulate_loss(total, F.cross_entropy(logits, target32), 1.0),
        backend.count_correct(logits, target, correct), backend.count_correct(logits, target32, correct))
    yield "softmax / log_softmax and backwards", lambda: (
        F.softmax_backward(logits, F.softmax(logits), 1), F.log_softmax_backward(logits, F.log_softmax(logits), 1))
    wide, wide_target = arr(8, 1000), np.arange(8) * 100
    yield "cross_entropy / softmax, 1000 classes (a block per row)", lambda: (
        F.cross_entropy(wide, wide_target), F.cross_entropy_backward(np.float32(1.0), wide, wide_target),
        F.softmax_backward(wide, F.softmax(wide), 1))
    spatial, spatial_target = arr(2, 10, 4, 4), np.arange(32).reshape(2, 4, 4) % 10
    yield "cross_entropy / softmax over (N, C, H, W) (a thread per row)", lambda: (
        F.cross_entropy(spatial, spatial_target), F.cross_entropy_backward(np.float32(1.0), spatial, spatial_target),
        F.softmax_backward(spatial, F.softmax(spatial, 1), 1))
    yield "transposed copy (tiled)", lambda: backend.contiguous(p.transpose(0, 1, 3, 2))
    yield from optimizer_cases(arr)


def untiled_pooling(x) -> None:
    """The version-1 pooling kernels, forwards and backwards, which run where a v2 tile would not
    fit in shared memory: forced by allowing tiles no shared memory (a shape of their own, so no
    cached v2 plan is used)."""
    from gpuconv.backend.cuda import pool as pool_launch

    saved = pool_launch.TILE_SHARED_BYTES
    pool_launch.TILE_SHARED_BYTES = 0
    try:
        y, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        F.max_pool2d(x, 3, 2, 1)
        F.max_pool2d_backward(y, x, indices, 3, 2, 1)
        F.max_pool2d_backward(y, x, indices.astype(np.int32), 3, 2, 1)
        avg = F.avg_pool2d(x, 2, 2)
        F.avg_pool2d_backward(avg, x.shape, 2, 2)
        ya, ia = F.adaptive_max_pool2d(x, 3, return_indices=True)
        F.adaptive_max_pool2d_backward(ya, x, ia, 3)
        F.adaptive_max_pool2d_backward(ya, x, ia.astype(np.int32), 3)
        F.adaptive_avg_pool2d_backward(F.adaptive_avg_pool2d(x, 3), x.shape, 3)
    finally:
        pool_launch.TILE_SHARED_BYTES = saved


def optimizer_cases(arr) -> Iterator[tuple[str, Callable[[], object]]]:
    """One step of each optimizer over ResNet-like parameter shapes (the multi-tensor kernels)."""
    from gpuconv import nn, optim

    shapes = [(64, 32, 3, 3), (64,), (64,), (10, 64), (10,)]
    for name, make in (("SGD momentum", lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)),
                       ("Adam", lambda ps: optim.Adam(ps)), ("RMSprop", lambda ps: optim.RMSprop(ps)),
                       ("Adagrad", lambda ps: optim.Adagrad(ps))):
        params = [nn.Parameter(arr(*s)) for s in shapes]
        for param in params:
            param.grad = arr(*param.shape)
        optimizer = make(params)
        optimizer.step()  # creates the state outside the profile
        yield f"{name} step", optimizer.step


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
        "Kernels not launched by these ops (float64 twins are not listed): " + (", ".join(missing) or "none") + ". "
        "The 64-bit-index variants (`_i64`) are the same code as their 32-bit twins with 64-bit index types and run only "
        "beyond 2^31 elements; in loss.cu the suffix names the target dtype instead (the int32-target twins of the "
        "int64-target kernels profiled).",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
