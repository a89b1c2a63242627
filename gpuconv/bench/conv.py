"""The ``conv`` subcommand: every applicable algorithm per direction, plus auto, tuned and PyTorch."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

import gpuconv
import gpuconv.functional as F
from gpuconv.functional import conv_algos

from .runner import Case, Group, Op
from .suites import ConvShape

DIRECTIONS = ("forward", "backward_data", "backward_weight")
_NEEDS = {"backward_data": (True, False, False), "backward_weight": (False, True, True)}


def algorithms() -> list[str]:
    """The registered convolution algorithms (gpuconv.functional.conv_algos), ``auto`` excluded."""
    return list(conv_algos.names())


def _call(shape: ConvShape, direction: str, algo: str):
    args = (shape.stride, shape.padding, shape.dilation, shape.groups)
    if direction == "forward":
        return lambda a: F.conv2d(a["x"], a["w"], a["b"], *args, algo=algo)
    return lambda a: F.conv2d_backward(a["dy"], a["x"], a["w"], *args, algo=algo, needs=_NEEDS[direction])


def _tuned(call):
    def run(a):
        with gpuconv.flags(conv_benchmark=True):
            return call(a)
    return run


def resolved_algo(shape: ConvShape, direction: str, dtype: np.dtype, tuned: bool = False) -> str:
    """What ``algo="auto"`` runs for this convolution, direction and dtype (the autotuner's pick when ``tuned``)."""
    x_shape, w_shape = (shape.n, shape.c, shape.h, shape.w), (shape.k, shape.c // shape.groups, shape.r, shape.s)
    args = (x_shape, w_shape, shape.stride, shape.padding, shape.dilation, shape.groups)
    with gpuconv.flags(conv_benchmark=tuned) if tuned else contextlib.nullcontext():
        return F.choose_algo(*args, direction=direction, dtype=dtype)


def conv_case(shape: ConvShape, algos: list[str], dtype: np.dtype, with_tuned: bool, seed: int = 0) -> Case:
    """The case of one convolution: ``algos`` (names, ``auto`` included if wanted) per direction.

    Inputs are random (weights scaled by 1/sqrt(fan-in), as PyTorch initialises them, so outputs
    stay O(1) and the relative error is meaningful).
    """
    rng = np.random.default_rng(seed)
    fan_in = shape.c // shape.groups * shape.r * shape.s
    inputs = {
        "x": rng.standard_normal((shape.n, shape.c, shape.h, shape.w)).astype(dtype),
        "w": (rng.standard_normal((shape.k, shape.c // shape.groups, shape.r, shape.s)) / math.sqrt(fan_in))
        .astype(dtype),
        "b": rng.standard_normal(shape.k).astype(dtype),
        "dy": rng.standard_normal((shape.n, shape.k) + shape.out_size).astype(dtype),
    }
    groups = []
    for direction in DIRECTIONS:
        reference = _call(shape, direction, "auto")
        ops = []
        for algo in algos:
            fields: dict[str, Any] = {"direction": direction, "impl": algo}
            if algo == "auto":
                fields["algo"] = resolved_algo(shape, direction, dtype)
            ops.append(Op(fields, _call(shape, direction, algo), reference))
        if with_tuned:
            ops.append(Op({"direction": direction, "impl": "tuned"}, _tuned(_call(shape, direction, "auto")),
                          reference))
        groups.append(Group(ops, torch=direction, flops=shape.forward_flops))
    spec = {"family": "conv", "dtype": dtype.name,
            "shape": [shape.n, shape.c, shape.h, shape.w, shape.k, shape.r, shape.s, shape.stride, shape.padding,
                      shape.dilation, shape.groups]}
    return Case(shape.name, inputs, groups, batch_keys=("x", "dy"), fields={"shape": shape.spec}, torch_spec=spec)


def fill_tuned_algos(rows: list[dict[str, Any]], shapes: dict[str, ConvShape], dtype: np.dtype) -> None:
    """After timing, name the algorithm the autotuner picked in each "tuned" row."""
    for row in rows:
        if row.get("impl") == "tuned" and row.get("status") == "ok":
            row["algo"] = resolved_algo(shapes[row["case"]], row["direction"], dtype, tuned=True)


def geomean(values: list[float]) -> float | None:
    """Geometric mean of the positive finite values, or None when there are none."""
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Geometric means of the ratio to PyTorch per implementation and direction, and of the best algorithm."""
    lines = []
    impls = sorted({r["impl"] for r in rows if "ratio_torch" in r})
    for impl in impls:
        parts = []
        for direction in DIRECTIONS:
            g = geomean([r["ratio_torch"] for r in rows if r["impl"] == impl and r["direction"] == direction
                         and "ratio_torch" in r])
            if g is not None:
                parts.append(f"{direction} {g:.2f}")
        lines.append(f"geometric mean of time / PyTorch, {impl}: " + ", ".join(parts))
    best: dict[str, list[float]] = {d: [] for d in DIRECTIONS}
    by_case: dict[tuple[str, str], float] = {}
    for r in rows:
        if "ratio_torch" in r and r["impl"] != "tuned":
            key = (r["case"], r["direction"])
            by_case[key] = min(by_case.get(key, math.inf), r["ratio_torch"])
    for (_, direction), ratio in by_case.items():
        best[direction].append(ratio)
    parts = [f"{d} {geomean(v):.2f}" for d, v in best.items() if geomean(v) is not None]
    if parts and len(impls) > 1:
        lines.append("geometric mean of time / PyTorch, best gpuconv algorithm per layer and direction: "
                     + ", ".join(parts))
    training = [f"{impl} {g:.2f}" for impl in impls + (["best per direction"] if len(impls) > 1 else [])
                if (g := geomean(_forward_backward_ratios(rows, impl))) is not None]
    if training:
        lines.append("forward+backward (the three directions' median times summed per layer), geometric mean of "
                     "time / PyTorch: " + ", ".join(training))
    return lines


def _forward_backward_ratios(rows: list[dict[str, Any]], impl: str) -> list[float]:
    """Per layer, (sum over directions of ``impl``'s median) / (PyTorch's sum); ``impl`` may be
    "best per direction" (the fastest non-tuned implementation of each direction)."""
    ratios = []
    for case in dict.fromkeys(r["case"] for r in rows):
        ours = theirs = 0.0
        for direction in DIRECTIONS:
            timed = [r for r in rows if r["case"] == case and r["direction"] == direction and "torch_ms" in r
                     and (r["impl"] == impl or (impl == "best per direction" and r["impl"] != "tuned"))]
            if not timed:
                break
            ours += min(r["median_ms"] for r in timed)
            theirs += timed[0]["torch_ms"]
        else:
            ratios.append(ours / theirs)
    return ratios
