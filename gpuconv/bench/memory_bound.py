"""The ``pool``, ``bn``, ``im2col`` and ``elementwise`` subcommands: memory-bound ops, GB/s and % of a copy.

GB/s counts each tensor the op reads or writes once (max pooling forward: x + y, plus the int64
indices when returned; backward: dy + indices + dx; batch norm forward: x + y, backward: x + dy +
dx; im2col: x + columns; ReLU forward x + y, backward dy + x + dx; bias add y read and written; an
optimizer step: parameters read and written, gradients read, each state read and written), and is
given as a % of a copy measured in the same run (of x; of the columns for im2col/col2im; of the
largest parameter for the optimizer steps): a device-to-device cudaMemcpy on the GPU,
``np.copyto`` on the CPU. Sizes are ResNet's and VGG's; ``shrink`` divides channels and planes (a
quick run, e.g. on the emulator). Each case names its PyTorch twin (gpuconv/bench/torch_ops.py),
timed on PyTorch's CUDA kernels when the backend is cupy and on its CPU kernels otherwise.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import gpuconv
import gpuconv.functional as F
from gpuconv import optim
from gpuconv.models import resnet18
from gpuconv.nn import Parameter

from .runner import Case, Group, Op


def _nbytes(*arrays: np.ndarray) -> int:
    return sum(int(a.nbytes) for a in arrays)


def _op(label: str, run, torch: str | None, nbytes: int, reference=None) -> Group:
    return Group([Op({"op": label}, run, reference)], torch=torch, nbytes=nbytes)


def pool_cases(batch: int, dtype: np.dtype, shrink: int = 1) -> list[Case]:
    """Max pooling 3/2/1 on the ResNet stem, average pooling 2/2, global adaptive pooling and GeM."""
    rng = np.random.default_rng(0)
    n = batch
    # As in the other families, no size is shrunk below what the op needs (avg_pool2d 2/2: 2 rows).
    c1, s1 = max(1, 64 // shrink), max(1, 112 // shrink)
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

    c2, s2 = max(1, 256 // shrink), max(2, 56 // shrink)
    x = rng.standard_normal((n, c2, s2, s2)).astype(dtype)
    dy = rng.standard_normal((n, c2, s2 // 2, s2 // 2)).astype(dtype)
    cases.append(Case(f"avg_pool2d 2/2 {n}x{c2}x{s2}x{s2}", {"x": x, "dy": dy}, [
        _op("forward", lambda a: F.avg_pool2d(a["x"], 2), "avg.forward", _nbytes(x, dy)),
        _op("backward", lambda a: F.avg_pool2d_backward(a["dy"], a["x"].shape, 2), "avg.backward", _nbytes(dy, x)),
    ], batch_keys=("x", "dy"), copy_of="x"))

    c3 = max(1, 2048 // shrink)
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
        _op("gem backward (dx, dp)", lambda a: F.gem_backward(a["dy"], a["xg"], a["p"]), "global.gem backward",
            _nbytes(dy, x, x)),
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


# (C, H, W) of ReLU inputs in ResNet-18: after the stem and in the last two stages.
RELU_LAYERS = [(64, 112, 112), (256, 14, 14), (512, 7, 7)]
# Optimizer steps over ResNet-18's parameters: (label, torch twin, gpuconv optimizer, state arrays
# per parameter). Arguments as torch_ops builds the twins.
OPTIMIZERS = [
    ("SGD momentum step", "sgd", lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9), 1),
    ("Adam step", "adam", lambda ps: optim.Adam(ps, lr=1e-3), 2),
]


class _PerInputs:
    """State built once per inputs dict (a scratch output, an optimizer with its parameters).

    The runner checks an op on fresh arrays of a slice and then times it on the device inputs, which
    it passes again and again: the check gets state of its own, the timed calls share one (as a
    training loop keeps its optimizer). In-place ops work on this state, never on the inputs (on the
    numpy backend those are the host arrays the check's reference reads afterwards). The key input
    stays referenced here, so its identity cannot be reused by another array.
    """

    def __init__(self, key: str, build: Callable[[dict], Any]):
        self.key, self.build = key, build
        self.array: Any = None
        self.state: Any = None

    def __call__(self, inputs: dict) -> Any:
        if self.array is not inputs[self.key]:
            self.array, self.state = inputs[self.key], self.build(inputs)
        return self.state


def bias_add(y: Any, bias: Any) -> Any:
    """y (N, C, H, W) += bias[c] in place, as a convolution's epilogue does on the backend; returns y."""
    be = gpuconv.get_backend()
    if be.capabilities.conv_bias_epilogue:  # the cupy / emulated kernel (conv_epilogue.cu)
        be.conv2d_bias_epilogue(y, bias)
    else:
        y += bias.reshape(1, -1, 1, 1)
    return y


def _optimizer_op(make: Callable[[list], Any], count: int) -> Callable[[dict], tuple]:
    """run(inputs) for one optimizer step over parameters p0.. with gradients g0..: returns the
    parameters after the step."""
    def build(inputs: dict) -> tuple[list[Parameter], Any]:
        params = []
        for i in range(count):
            param = Parameter(inputs[f"p{i}"].copy())
            param.grad = inputs[f"g{i}"]
            params.append(param)
        return params, make(params)

    state = _PerInputs("p0", build)

    def run(inputs: dict) -> tuple:
        params, optimizer = state(inputs)
        optimizer.step()
        return tuple(p.data for p in params)

    return run


def elementwise_cases(batch: int, dtype: np.dtype, shrink: int = 1) -> list[Case]:
    """ReLU forward and backward and a convolution's bias add at ResNet-18 sizes; SGD (momentum) and
    Adam steps over ResNet-18's parameters (every dimension of 16 or more divided by ``shrink``)."""
    rng = np.random.default_rng(0)
    name = np.dtype(dtype).name
    cases = []
    for c, h, w in RELU_LAYERS:
        c, h, w = max(1, c // shrink), max(1, h // shrink), max(1, w // shrink)
        shape = (batch, c, h, w)
        x = rng.standard_normal(shape).astype(dtype)
        inputs = {"x": x, "dy": rng.standard_normal(shape).astype(dtype), "bias": rng.standard_normal(c).astype(dtype)}
        scratch = _PerInputs("x", lambda a: a["x"].copy())
        cases.append(Case(f"activation {'x'.join(map(str, shape))}", inputs, [
            _op("relu forward", lambda a: F.relu(a["x"]), "relu forward", 2 * x.nbytes),
            _op("relu backward", lambda a: F.relu_backward(a["dy"], a["x"]), "relu backward", 3 * x.nbytes),
            _op("bias add (in place)", lambda a, scratch=scratch: bias_add(scratch(a), a["bias"]), "bias add",
                2 * x.nbytes),
        ], batch_keys=("x", "dy"), copy_of="x",
            torch_spec={"family": "elementwise", "kind": "activation", "shape": list(shape), "dtype": name}))
    with gpuconv.backend("numpy"):
        shapes = [tuple(max(1, d // shrink) if d >= 16 else d for d in p.data.shape) for p in resnet18().parameters()]
    inputs = {}
    for i, shape in enumerate(shapes):
        inputs[f"p{i}"] = rng.standard_normal(shape).astype(dtype)
        inputs[f"g{i}"] = rng.standard_normal(shape).astype(dtype)
    numel = sum(int(np.prod(s)) for s in shapes)
    largest = max(range(len(shapes)), key=lambda i: inputs[f"p{i}"].size)
    groups = [_op(label, _optimizer_op(make, len(shapes)), twin, (3 + 2 * states) * numel * np.dtype(dtype).itemsize)
              for label, twin, make, states in OPTIMIZERS]
    cases.append(Case(f"optimizer step, ResNet-18 ({len(shapes)} tensors, {numel / 1e6:.2f} M)", inputs, groups,
                      batch_keys=(), copy_of=f"p{largest}",
                      torch_spec={"family": "elementwise", "kind": "optimizer", "shapes": [list(s) for s in shapes],
                                  "dtype": name}))
    return cases
