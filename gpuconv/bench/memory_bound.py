"""The ``pool``, ``bn`` and ``im2col`` subcommands: memory-bound ops, GB/s and % of a copy.

GB/s counts each tensor the op reads or writes once (max pooling forward: x + y, plus the int64
indices when returned; backward: dy + indices + dx; batch norm forward: x + y, backward: x + dy +
dx; im2col: x + columns), and is given as a % of a copy measured in the same run (of x; of the
columns for im2col/col2im): a device-to-device cudaMemcpy on the GPU, ``np.copyto`` on the CPU.
Sizes are ResNet's and VGG's; ``shrink`` divides channels and planes (a quick run, e.g. on the
emulator).
"""

from __future__ import annotations

import numpy as np

import gpuconv
import gpuconv.functional as F

from .runner import Case, Group, Op


def _nbytes(*arrays: np.ndarray) -> int:
    return sum(int(a.nbytes) for a in arrays)


def _op(label: str, run, torch: str | None, nbytes: int, reference=None) -> Group:
    return Group([Op({"op": label}, run, reference)], torch=torch, nbytes=nbytes)


def pool_cases(batch: int, dtype: np.dtype, shrink: int = 1) -> list[Case]:
    """Max pooling 3/2/1 on the ResNet stem, average pooling 2/2, global adaptive pooling and GeM."""
    rng = np.random.default_rng(0)
    n = batch
    c1, s1 = 64 // shrink, 112 // shrink
    x = rng.standard_normal((n, c1, s1, s1)).astype(dtype)
    with gpuconv.backend("numpy"):
        y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    cases = [Case(f"max_pool2d 3/2/1 {n}x{c1}x{s1}x{s1}", {"x": x, "dy": dy, "idx": idx}, [
        _op("forward", lambda a: F.max_pool2d(a["x"], 3, 2, 1), "max.forward", _nbytes(x, y)),
        _op("forward+indices", lambda a: F.max_pool2d(a["x"], 3, 2, 1, return_indices=True),
            "max.forward+indices", _nbytes(x, y, idx)),
        _op("backward", lambda a: F.max_pool2d_backward(a["dy"], a["x"], a["idx"], 3, 2, 1), "max.backward",
            _nbytes(dy, idx, x)),
    ], batch_keys=("x", "dy", "idx"), copy_of="x")]

    c2, s2 = 256 // shrink, 56 // shrink
    x = rng.standard_normal((n, c2, s2, s2)).astype(dtype)
    dy = rng.standard_normal((n, c2, s2 // 2, s2 // 2)).astype(dtype)
    cases.append(Case(f"avg_pool2d 2/2 {n}x{c2}x{s2}x{s2}", {"x": x, "dy": dy}, [
        _op("forward", lambda a: F.avg_pool2d(a["x"], 2), "avg.forward", _nbytes(x, dy)),
        _op("backward", lambda a: F.avg_pool2d_backward(a["dy"], a["x"].shape, 2), "avg.backward", _nbytes(dy, x)),
    ], batch_keys=("x", "dy"), copy_of="x"))

    c3 = 2048 // shrink
    x = rng.standard_normal((n, c3, 7, 7)).astype(dtype)
    xg = np.abs(x)
    dy = rng.standard_normal((n, c3, 1, 1)).astype(dtype)
    p = np.array([3.0], dtype=dtype)
    cases.append(Case(f"global pooling {n}x{c3}x7x7", {"x": x, "xg": xg, "dy": dy, "p": p}, [
        _op("adaptive_avg_pool2d forward", lambda a: F.adaptive_avg_pool2d(a["x"], 1),
            "global.adaptive_avg forward", _nbytes(x, dy)),
        _op("adaptive_avg_pool2d backward", lambda a: F.adaptive_avg_pool2d_backward(a["dy"], a["x"].shape, 1),
            "global.adaptive_avg backward", _nbytes(dy, x)),
        _op("adaptive_max_pool2d forward", lambda a: F.adaptive_max_pool2d(a["x"], 1),
            "global.adaptive_max forward", _nbytes(x, dy)),
        _op("gem forward (p=3)", lambda a: F.gem(a["xg"], a["p"]), "global.gem forward", _nbytes(x, dy)),
        _op("gem backward (dx, dp)", lambda a: F.gem_backward(a["dy"], a["xg"], a["p"]), None, _nbytes(dy, x, x)),
    ], batch_keys=("x", "xg", "dy"), copy_of="x"))
    spec = {"family": "pool", "batch": n, "shrink": shrink, "dtype": np.dtype(dtype).name}
    for case in cases:
        case.torch_spec = spec
    return cases


# (C, H, W) of ResNet batch-norm layers: the stem, and the first BN of each stage (ResNet-18/34).
BN_LAYERS = [(64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]


def bn_cases(batch: int, dtype: np.dtype, shrink: int = 1) -> list[Case]:
    """Batch norm: training forward (with running statistics), eval forward, backward."""
    rng = np.random.default_rng(0)
    cases = []
    for c, h, w in BN_LAYERS:
        c, h, w = max(1, c // shrink), max(1, h // shrink), max(1, w // shrink)
        shape = (batch, c, h, w)
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        inputs = {"x": x, "dy": rng.standard_normal(shape).astype(dtype),
                  "weight": rng.uniform(0.5, 1.5, c).astype(dtype), "bias": rng.standard_normal(c).astype(dtype),
                  "mean": rng.standard_normal(c).astype(dtype), "var": rng.uniform(0.5, 2.0, c).astype(dtype),
                  "invstd": rng.uniform(0.5, 2.0, c).astype(dtype), "running_mean": np.zeros(c, dtype),
                  "running_var": np.ones(c, dtype)}

        def training(a):
            return F.batch_norm(a["x"], a["running_mean"], a["running_var"], a["weight"], a["bias"], training=True)

        def evaluation(a):
            return F.batch_norm(a["x"], a["mean"], a["var"], a["weight"], a["bias"], training=False)

        cases.append(Case(f"batch_norm {'x'.join(map(str, shape))}", inputs, [
            _op("training forward", training, "training forward", 2 * x.nbytes),
            _op("eval forward", evaluation, "eval forward", 2 * x.nbytes),
            _op("backward (dx, dweight, dbias)",
                lambda a: F.batch_norm_backward(a["dy"], a["x"], a["weight"], a["mean"], a["invstd"]), "backward",
                3 * x.nbytes),
        ], batch_keys=("x", "dy"), copy_of="x",
            torch_spec={"family": "bn", "shape": list(shape), "dtype": np.dtype(dtype).name}))
    return cases


# (name, C, H=W, kernel, stride, padding) of ResNet-18 / VGG-16 layers.
IM2COL_LAYERS = [
    ("resnet18.layer1 3x3", 64, 56, 3, 1, 1),
    ("resnet18.layer2 3x3/2", 64, 56, 3, 2, 1),
    ("resnet18.layer3 3x3", 256, 14, 3, 1, 1),
    ("vgg16.conv3_1 3x3", 128, 56, 3, 1, 1),
]


def im2col_cases(batch: int, dtype: np.dtype, shrink: int = 1) -> list[Case]:
    """im2col and col2im in the ``knl`` layout (the one the convolution's GEMM uses)."""
    rng = np.random.default_rng(0)
    cases = []
    for name, c, size, k, s, p in IM2COL_LAYERS:
        c, size = max(1, c // shrink), max(k, size // shrink)
        x = rng.standard_normal((batch, c, size, size)).astype(dtype)
        with gpuconv.backend("numpy"):
            cols = F.im2col(x, k, stride=s, padding=p, layout="knl")
        moved = _nbytes(x, cols)

        def sliced(inputs, images, k=k, s=s, p=p):
            # The knl columns interleave the images: the check's columns are those of its slice of x.
            with gpuconv.backend("numpy"):
                return {"x": inputs["x"][:images],
                        "cols": F.im2col(inputs["x"][:images], k, stride=s, padding=p, layout="knl")}

        cases.append(Case(f"{name} {batch}x{c}x{size}x{size}", {"x": x, "cols": cols}, [
            _op("im2col", lambda a, k=k, s=s, p=p: F.im2col(a["x"], k, stride=s, padding=p, layout="knl"), "im2col",
                moved),
            _op("col2im", lambda a, k=k, s=s, p=p: F.col2im(a["cols"], a["x"].shape[2:], k, stride=s, padding=p,
                                                              layout="knl"), "col2im", moved),
        ], batch_keys=(), slicer=sliced, copy_of="cols",
            torch_spec={"family": "im2col", "shape": [batch, c, size, size, k, s, p], "dtype": np.dtype(dtype).name}))
    return cases
