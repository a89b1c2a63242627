"""Which convolution algorithm runs in each direction, and how much workspace it takes.

Three directions, chosen separately as cuDNN does: ``"forward"`` (y from x), ``"backward_data"``
(dx from dy) and ``"backward_weight"`` (dweight from dy and x). ``algo=`` is a name from
:data:`ALGOS` for all three, or a mapping with any of those keys (missing keys are ``"auto"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import flags
from ..backend.cuda import conv_implicit_gemm
from ..backend.cuda.conv_direct import backward_weight_v2_splits
from .conv_geometry import ConvGeometry

ALGOS = ("auto", "im2col", "direct", "gemm", "implicit_gemm")
DIRECTIONS = ("forward", "backward_data", "backward_weight")


def heuristic(g: ConvGeometry, direction: str) -> str:
    """What ``"auto"`` runs without the autotuner, rewritten from the H100 tables of
    GPU-MEASUREMENTS.md (fp32, batch 32, main at b6b86e3):

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
    measured on a GPU yet (no table of GPU-MEASUREMENTS.md has it). The autotuner
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


def check_algo_spec(algo: Any) -> dict[str, str]:
    """``algo`` (a name or a per-direction mapping) as {direction: name}; ValueError naming what is wrong."""
    if isinstance(algo, str):
        if algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(map(repr, ALGOS))} or a mapping from "
                             f"{', '.join(map(repr, DIRECTIONS))} to one of them, got {algo!r}")
        return dict.fromkeys(DIRECTIONS, algo)
    if isinstance(algo, Mapping):
        unknown = [k for k in algo if k not in DIRECTIONS]
        if unknown:
            raise ValueError(f"algo: unknown direction key(s) {', '.join(map(repr, unknown))}; the keys are "
                             f"{', '.join(map(repr, DIRECTIONS))}")
        spec = dict.fromkeys(DIRECTIONS, "auto")
        for direction, name in algo.items():
            if not isinstance(name, str) or name not in ALGOS:
                raise ValueError(f"algo[{direction!r}] must be one of {', '.join(map(repr, ALGOS))}, got {name!r}")
            spec[direction] = name
        return spec
    raise ValueError(f"algo must be one of {', '.join(map(repr, ALGOS))} or a mapping from directions to them, "
                     f"got {type(algo).__name__} {algo!r}")


def check_applies(name: str, g: ConvGeometry, direction: str) -> str:
    """``name`` if it applies to ``g``; ValueError when it does not (``"gemm"`` on a non-1x1)."""
    if name == "gemm" and not g.is_pointwise:
        raise ValueError(f"algo='gemm' needs a 1x1 kernel with stride 1 and no padding ({direction}), got kernel "
                         f"{g.kernel_size}, stride {g.stride}, padding {g.padding} (top, bottom, left, right)")
    if name == "implicit_gemm":
        reason = conv_implicit_gemm.unsupported_reason(g)
        if reason is not None:
            raise ValueError(f"algo='implicit_gemm' cannot run this convolution ({direction}): {reason}")
    return name


def candidates(g: ConvGeometry) -> tuple[str, ...]:
    """The algorithms that apply to ``g`` (what the autotuner times)."""
    return tuple(a for a in ALGOS[1:] if (a != "gemm" or g.is_pointwise)
                 and (a != "implicit_gemm" or conv_implicit_gemm.unsupported_reason(g) is None))


def check_direction(direction: Any) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}, got {direction!r}")
    return direction


# ---- workspace ------------------------------------------------------------------------------------
class Plan(NamedTuple):
    """How one direction runs: images per chunk (im2col/gemm) and the workspace bytes it allocates."""

    chunk: int
    workspace: int


def plan(g: ConvGeometry, name: str, direction: str, itemsize: int, limit: int | None = None) -> Plan:
    """The chunking and exact workspace of algorithm ``name`` (not "auto") in ``direction`` on the
    cupy and emulated backends (gpuconv/backend/cuda/conv_im2col.py, conv_direct.py and
    conv_implicit_gemm.py allocate exactly this)."""
    limit = flags.workspace_limit if limit is None else limit
    kh, kw = g.kernel_size
    l_size = g.out_size[0] * g.out_size[1]
    cols_image = g.c_in * kh * kw * l_size * itemsize
    dy_image = g.c_out * l_size * itemsize
    weight_bytes = g.c_out * (g.c_in // g.groups) * kh * kw * itemsize
    if name == "direct":
        if direction == "backward_data":
            return Plan(g.n, weight_bytes if g.stride == (1, 1) else 0)  # flipped weights for the stride-1 path
        if direction == "backward_weight":
            return Plan(g.n, backward_weight_v2_splits(g) * weight_bytes)
        return Plan(g.n, 0)
    if name == "implicit_gemm":
        if direction == "backward_weight":
            splits = conv_implicit_gemm.backward_weight_splits(g, itemsize)
            return Plan(g.n, splits * weight_bytes if splits > 1 else 0)  # the split-K partial sums
        return Plan(g.n, 0)
    if name == "gemm" and direction == "forward":
        return Plan(g.n, 0)
    # The transposed weights (G, rows, Kg) that backward data multiplies by: a copy, except when
    # rows or Kg is 1 (depthwise, one filter per group), where the transpose is already contiguous.
    transposed_weight = weight_bytes if (g.c_in // g.groups) * kh * kw > 1 and g.c_out // g.groups > 1 else 0
    if name == "gemm" and direction == "backward_data":
        return Plan(g.n, transposed_weight)
    # im2col in every direction, and gemm's backward_weight (the same code: 1x1 columns are x transposed)
    per_image = cols_image + (dy_image if direction == "backward_weight" else 0)
    chunk = max(1, min(g.n, limit // max(1, per_image)))
    workspace = chunk * per_image
    if direction == "backward_data":
        workspace += transposed_weight
    elif direction == "backward_weight":
        # dweight^T summed per group (G > 1), and each later chunk's dweight before it is added
        workspace += weight_bytes * ((g.groups > 1) + (chunk < g.n))
    return Plan(chunk, workspace)


def workspace_bytes(g: ConvGeometry, names: dict[str, str], dtype: Any, direction: str | None) -> int:
    itemsize = np.dtype(dtype).itemsize
    directions = DIRECTIONS if direction is None else (direction,)
    return max(plan(g, names[d], d, itemsize).workspace for d in directions)

