"""PyTorch's twins of the benchmarked gpuconv calls; imported only in the PyTorch child process.

``build(torch, spec, device)`` returns ``{name: callable}`` for one case; the names match the
``torch`` keys that the gpuconv side (conv.py, memory_bound.py) asks for. Models have their twin in
torch_twin.py, built from gpuconv's module tree in the benchmark's own process (model.py).
"""

from __future__ import annotations

import math
from typing import Any, Callable


def build(torch: Any, spec: dict, device: str) -> dict[str, Callable[[], Any]]:
    """Callables of the case described by ``spec`` (a dict with a ``family`` key), on ``device``."""
    builders = {"conv": _conv, "pool": _pool, "bn": _bn, "im2col": _im2col, "elementwise": _elementwise}
    return builders[spec["family"]](torch, spec, device, getattr(torch, spec.get("dtype", "float32")))


def _randn(torch: Any, shape, dtype, device, generator) -> Any:
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)


def _conv(torch, spec, device, dtype):
    n, c, h, w, k, r, s, stride, pad, dil, groups = spec["shape"]
    gen = torch.Generator().manual_seed(0)
    x = _randn(torch, (n, c, h, w), dtype, device, gen)
    weight = _randn(torch, (k, c // groups, r, s), dtype, device, gen) / math.sqrt(c // groups * r * s)
    bias = _randn(torch, (k,), dtype, device, gen)
    y = torch.nn.functional.conv2d(x, weight, bias, stride, pad, dil, groups)
    dy = torch.randn_like(y)
    conv_backward = torch.ops.aten.convolution_backward

    def forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, weight, bias, stride, pad, dil, groups)

    def backward(mask):
        return lambda: conv_backward(dy, x, weight, [k], [stride] * 2, [pad] * 2, [dil] * 2, False, [0, 0], groups,
                                     mask)

    return {"forward": forward, "backward_data": backward([True, False, False]),
            "backward_weight": backward([False, True, True])}


def _pool(torch, spec, device, dtype):
    n, scale = spec["batch"], spec["shrink"]
    gen = torch.Generator().manual_seed(0)
    fn = torch.nn.functional
    aten = torch.ops.aten
    x1 = _randn(torch, (n, 64 // scale, 112 // scale, 112 // scale), dtype, device, gen)
    y1, idx1 = fn.max_pool2d(x1, 3, 2, 1, return_indices=True)
    dy1 = torch.randn_like(y1)
    x2 = _randn(torch, (n, 256 // scale, 56 // scale, 56 // scale), dtype, device, gen)
    dy2 = torch.randn_like(fn.avg_pool2d(x2, 2))
    x3 = _randn(torch, (n, 2048 // scale, 7, 7), dtype, device, gen)
    dy3 = torch.randn_like(fn.adaptive_avg_pool2d(x3, 1))
    x3g = x3.abs()
    p = torch.tensor([3.0], dtype=dtype, device=device)

    def gem(x, p):
        return x.clamp(min=1e-6).pow(p).mean((2, 3), keepdim=True).pow(1.0 / p)

    # GeM's backward through autograd, the graph built once: the timed call is the backward alone.
    xg_req, p_req = x3g.clone().requires_grad_(), p.clone().requires_grad_()
    y_gem = gem(xg_req, p_req)
    return {
        "max.forward": lambda: fn.max_pool2d(x1, 3, 2, 1),
        "max.forward+indices": lambda: fn.max_pool2d(x1, 3, 2, 1, return_indices=True),
        "max.backward": lambda: aten.max_pool2d_with_indices_backward(dy1, x1, [3, 3], [2, 2], [1, 1], [1, 1], False,
                                                                      idx1),
        "avg.forward": lambda: fn.avg_pool2d(x2, 2),
        "avg.backward": lambda: aten.avg_pool2d_backward(dy2, x2, [2, 2], [2, 2], [0, 0], False, True, None),
        "global.adaptive_avg forward": lambda: fn.adaptive_avg_pool2d(x3, 1),
        "global.adaptive_avg backward": lambda: aten._adaptive_avg_pool2d_backward(dy3, x3),
        "global.adaptive_max forward": lambda: fn.adaptive_max_pool2d(x3, 1),
        "global.gem forward": lambda: gem(x3g, p),
        "global.gem backward": lambda: torch.autograd.grad(y_gem, (xg_req, p_req), dy3, retain_graph=True),
    }


def _bn(torch, spec, device, dtype):
    n, c, h, w = spec["shape"]
    gen = torch.Generator().manual_seed(0)
    x = _randn(torch, (n, c, h, w), dtype, device, gen) * 2 + 1
    dy = _randn(torch, (n, c, h, w), dtype, device, gen)
    weight = torch.rand(c, generator=gen, dtype=dtype).to(device) + 0.5
    bias = _randn(torch, (c,), dtype, device, gen)
    rm, rv = torch.zeros(c, dtype=dtype, device=device), torch.ones(c, dtype=dtype, device=device)
    _, mean, invstd = torch.native_batch_norm(x, weight, bias, rm, rv, True, 0.1, 1e-5)
    return {
        "training forward": lambda: torch.native_batch_norm(x, weight, bias, rm, rv, True, 0.1, 1e-5),
        "eval forward": lambda: torch.native_batch_norm(x, weight, bias, rm, rv, False, 0.1, 1e-5),
        "backward": lambda: torch.ops.aten.native_batch_norm_backward(dy, x, weight, rm, rv, mean, invstd, True,
                                                                      1e-5, [True, True, True]),
    }


def _im2col(torch, spec, device, dtype):
    n, c, h, w, k, stride, pad = spec["shape"]
    gen = torch.Generator().manual_seed(0)
    x = _randn(torch, (n, c, h, w), dtype, device, gen)
    cols = torch.nn.functional.unfold(x, k, padding=pad, stride=stride)
    return {"im2col": lambda: torch.nn.functional.unfold(x, k, padding=pad, stride=stride),
            "col2im": lambda: torch.nn.functional.fold(cols, (h, w), k, padding=pad, stride=stride)}


def _elementwise(torch, spec, device, dtype):
    gen = torch.Generator().manual_seed(0)
    if spec["kind"] == "activation":
        x = _randn(torch, spec["shape"], dtype, device, gen)
        dy = _randn(torch, spec["shape"], dtype, device, gen)
        bias = _randn(torch, spec["shape"][1:2], dtype, device, gen).view(1, -1, 1, 1)
        y = x.clone()
        return {"relu forward": lambda: torch.relu(x),
                "relu backward": lambda: torch.ops.aten.threshold_backward(dy, x, 0.0),
                "bias add": lambda: y.add_(bias)}
    params = [torch.nn.Parameter(_randn(torch, shape, dtype, device, gen)) for shape in spec["shapes"]]
    for p in params:
        p.grad = _randn(torch, p.shape, dtype, device, gen)
    # foreach=True: PyTorch's multi-tensor kernels, its fastest path for these optimizers on CUDA.
    sgd = torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=True)
    adam = torch.optim.Adam(params, lr=1e-3, foreach=True)
    return {"sgd": sgd.step, "adam": adam.step}
