"""Which convolution algorithm runs in each direction, and how much workspace it takes.

Three directions, chosen separately as cuDNN does: ``"forward"`` (y from x), ``"backward_data"``
(dx from dy) and ``"backward_weight"`` (dweight from dy and x). ``algo=`` is ``"auto"`` or the name
of a registered algorithm (:mod:`gpuconv.functional.conv_algos`) for all three, or a mapping with
any of those keys (missing keys are ``"auto"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import conv_algos
from .conv_algos import DIRECTIONS, Plan
from .conv_geometry import ConvGeometry

#: ``"auto"`` and the algorithms registered when gpuconv was imported (the built-in ones), for
#: users; what runs is checked against the registry itself (``conv_algos.names()``), which
#: algorithms registered later are in.
ALGOS = ("auto",) + conv_algos.names()


def heuristic(g: ConvGeometry, direction: str) -> str:
    """What ``"auto"`` runs without the autotuner on the GPU, written from the H100 tables of
    benchmarks/results/conv-cupy-h100-b6b86e3-2026-11-26.md (fp32, main at commit b6b86e3):

    forward
      - a 1x1 kernel, stride 1, no padding: ``"gemm"``, since it is now the im2col path's own
        batched GEMM without the column copy (the table "conv2d per layer" measured the OLD
        per-image gemm at 1.431 ms against im2col's 0.490 on r50 1x1 256->64; the old path is gone).
      - at most 4 input channels per group, depthwise included: ``"direct"`` (table "conv2d per
        layer", r18 conv1 7x7/2 3->64: direct was the best forward, 0.509 ms, 1.04x cuDNN).
      - output planes of at least 224x224: ``"direct"`` (same table, vgg 3x3 64 @224: direct was
        the best forward, 9.622 ms).
      - everything else: ``"im2col"`` (same table: on the other rows ``auto``, which ran im2col
        there, is within 3% of the best gpuconv forward+backward).
    backward_data
      - the 1x1 case above: ``"gemm"`` (one batched GEMM straight into dx, no col2im).
      - everything else: ``"im2col"``. The direct backward is never chosen: on the stem, ``auto``
        (then direct in every direction) took 23.55 ms forward+backward against im2col's 3.488
        (table "conv2d per layer"), conv2d_direct_backward_data alone 10.5 ms per step (table
        "Where the GPU time goes"), and bench_conv measured direct forward+backward 10-40x slower
        than im2col's. The new direct backward kernels (v3 data, v2 weight) are unmeasured, so
        ``auto`` does not choose them; the autotuner may.
    backward_weight
      - always ``"im2col"`` (table "Where the GPU time goes": conv2d_direct_backward_weight of the
        3-channel stem was 43.5% of a ResNet-18 training step).
    Depthwise layers appear in no table: they follow the rules above (direct forward, im2col
    backward) until one is measured.

    ``"implicit_gemm"`` (kernels/conv_implicit_gemm.cu) is never chosen here: it has not been
    measured on a GPU yet (no table of that file has it). The autotuner
    (``gpuconv.flags.conv_benchmark``) times it with the others in every direction, so it wins
    where it is measured fastest; this heuristic should follow once bench_conv has measured it.
    """
    if direction == "forward":
        if g.is_pointwise:
            return "gemm"
        if g.c_in // g.groups <= 4 or g.out_size[0] * g.out_size[1] >= 224 * 224:
            return "direct"
        return "im2col"
    if direction == "backward_data" and g.is_pointwise:
        return "gemm"
    return "im2col"


def _choices() -> str:
    return ", ".join(map(repr, ("auto",) + conv_algos.names()))


def check_algo_spec(algo: Any) -> dict[str, str]:
    """``algo`` (a name or a per-direction mapping) as {direction: name}; ValueError naming what is wrong
    and the registered algorithms."""
    if isinstance(algo, str):
        if algo != "auto" and algo not in conv_algos.names():
            raise ValueError(f"algo must be one of {_choices()} or a mapping from "
                             f"{', '.join(map(repr, DIRECTIONS))} to one of them, got {algo!r}")
        return dict.fromkeys(DIRECTIONS, algo)
    if isinstance(algo, Mapping):
        unknown = [k for k in algo if k not in DIRECTIONS]
        if unknown:
            raise ValueError(f"algo: unknown direction key(s) {', '.join(map(repr, unknown))}; the keys are "
                             f"{', '.join(map(repr, DIRECTIONS))}")
        spec = dict.fromkeys(DIRECTIONS, "auto")
        for direction, name in algo.items():
            if not isinstance(name, str) or (name != "auto" and name not in conv_algos.names()):
                raise ValueError(f"algo[{direction!r}] must be one of {_choices()}, got {name!r}")
            spec[direction] = name
        return spec
    raise ValueError(f"algo must be one of {_choices()} or a mapping from directions to them, "
                     f"got {type(algo).__name__} {algo!r}")


def check_applies(name: str, g: ConvGeometry, direction: str) -> str:
    """``name`` if that algorithm runs ``g`` in ``direction``; ValueError saying why it does not
    (``"gemm"`` on a non-1x1 kernel, ``"implicit_gemm"`` beyond its kernels' 32-bit indexing)."""
    reason = conv_algos.get(name).unsupported_reason(g, direction)
    if reason is not None:
        raise ValueError(f"algo={name!r} {reason}")
    return name


def candidates(g: ConvGeometry, direction: str | None = None) -> tuple[str, ...]:
    """The registered algorithms that run ``g`` in ``direction`` (None: in every direction), in
    registration order (what the autotuner times)."""
    return tuple(a.name for a in conv_algos.algorithms() if a.applies(g, direction))


def check_direction(direction: Any) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}, got {direction!r}")
    return direction


def plan(g: ConvGeometry, name: str, direction: str, itemsize: int, limit: int | None = None) -> Plan:
    """The chunking and exact workspace of algorithm ``name`` (not "auto") in ``direction`` on the
    cupy and emulated backends (:meth:`gpuconv.functional.conv_algos.ConvAlgorithm.plan`)."""
    return conv_algos.get(name).plan(g, direction, itemsize, limit)


def workspace_bytes(g: ConvGeometry, names: dict[str, str], dtype: Any, direction: str | None) -> int:
    itemsize = np.dtype(dtype).itemsize
    directions = DIRECTIONS if direction is None else (direction,)
    return max(plan(g, names[d], d, itemsize).workspace for d in directions)
