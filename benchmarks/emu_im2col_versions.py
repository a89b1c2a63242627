"""im2col / col2im kernel versions side by side in the emulator's access profile (no GPU needed).

    python benchmarks/emu_im2col_versions.py

For a few ResNet-like planes (8 channels, batch 2, 3x3 kernel, float32, layout "knl" unless
shown) prints, per version (v2; v3 with scalar loads; v3 with 16-byte loads where they apply; v4,
whose lanes each load one distinct aligned vector and shuffle), the 32-byte sectors its global
loads and stores touch and its warp-level memory requests, and the load efficiency (the ideal
sectors, distinct bytes / 32 per request, over the sectors touched): the evidence behind the
launcher's choice of version (gpuconv/backend/cuda/im2col.py).
"""

from __future__ import annotations

import sys

import numpy as np

import gpuconv
import gpuconv.backend.emulated as emulated

# (H, W, stride, padding, layout)
CASES = ((16, 16, 1, 1, "knl"), (18, 18, 1, 0, "knl"), (16, 16, 2, 1, "knl"), (56, 56, 1, 1, "knl"),
         (58, 58, 1, 0, "knl"), (56, 56, 1, 0, "knl"), (56, 56, 2, 1, "knl"), (28, 28, 1, 1, "nkl"))
VERSIONS = (("v2", dict(version=2)), ("v3 scalar loads", dict(version=3, vector_loads=False)),
            ("v3 vector loads", dict(version=3, vector_loads=True)), ("v4", dict(version=4)))


def counts(call) -> str:
    """'load sectors + store sectors = total (requests), load efficiency' of the one kernel ``call``
    launches, or why not."""
    try:
        with emulated.profile() as table:
            call()
    except ValueError:
        return "does not apply"
    (kernel,) = table.kernels.values()
    c = kernel.counters
    loads, stores = c["global_load"]["transactions"], c["global_store"]["transactions"]
    requests = c["global_load"]["requests"] + c["global_store"]["requests"]
    efficiency = c["global_load"]["ideal"] / loads
    return f"{loads} + {stores} = {loads + stores} ({requests}), {efficiency:.0%}"


def main() -> int:
    rng = np.random.default_rng(0)
    lines = ["| op | x | stride, padding, layout | " + " | ".join(name for name, _ in VERSIONS) + " |",
             "|---|---|---|" + "---|" * len(VERSIONS)]
    with gpuconv.backend("emulated") as be:
        for h, w, s, p, layout in CASES:
            x = rng.standard_normal((2, 8, h, w)).astype(np.float32)
            out = ((h + 2 * p - 3) // s + 1, (w + 2 * p - 3) // s + 1)
            args = ((3, 3), (s, s), (p, p), (1, 1), out, layout)
            cols = be.im2col(x, *args)
            where = f"| {x.shape} | {s}, {p}, {layout} | "
            lines.append("| im2col " + where + " | ".join(counts(lambda kw=kw: be.im2col(x, *args, **kw))
                                                         for _, kw in VERSIONS) + " |")
            lines.append("| col2im " + where + " | ".join(counts(lambda kw=kw: be.col2im(cols, x.shape, *args, **kw))
                                                         for _, kw in VERSIONS) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
