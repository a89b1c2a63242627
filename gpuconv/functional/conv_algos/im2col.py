"""``"im2col"``: the input windows copied into a column buffer (N, C*KH*KW, OH*OW), then one batched
GEMM per chunk of images straight into NCHW (gpuconv/backend/cuda/conv_im2col.py; on the numpy
backend gpuconv/backend/numpy/conv.py). The batch is cut into chunks of whole images whose columns
fit ``gpuconv.flags.workspace_limit``; what a chunk's buffers take is the backend's to say
(``be.conv2d_im2col_workspace(g, direction, itemsize, chunk)``)."""

from __future__ import annotations

from typing import Any

from ... import flags
from ...backend import get_backend
from ..conv_geometry import ConvGeometry
from .base import ConvAlgorithm, Plan


def column_plan(g: ConvGeometry, direction: str, itemsize: int, limit: int | None) -> Plan:
    """As many whole images per chunk as the column code's per-image buffers (the columns, and in
    backward weight dy's copy) fit into ``limit`` bytes (None: ``gpuconv.flags.workspace_limit``),
    at least one; and the workspace the backend reports for that chunk (im2col, and gemm's
    backward weight: the same code, the columns of a 1x1 kernel being x itself)."""
    limit = flags.workspace_limit if limit is None else limit
    per_image = g.column_bytes_per_image(itemsize)
    if direction == "backward_weight":
        per_image += g.c_out * g.out_size[0] * g.out_size[1] * itemsize
    chunk = max(1, min(g.n, limit // max(1, per_image)))
    return Plan(chunk, get_backend().conv2d_im2col_workspace(g, direction, itemsize, chunk))


class Im2col(ConvAlgorithm):
    name = "im2col"
    description = "columns + GEMM (cuBLAS on the GPU, BLAS on the CPU)"

    def plan(self, g: ConvGeometry, direction: str, itemsize: int, limit: int | None = None) -> Plan:
        return column_plan(g, direction, itemsize, limit)

    def forward(self, be: Any, x: Any, weight: Any, bias: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_im2col_forward(x, weight, bias, g, plan.chunk)

    def backward_data(self, be: Any, dy: Any, weight: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_im2col_backward_data(dy, weight, g, plan.chunk)

    def backward_weight(self, be: Any, dy: Any, x: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_im2col_backward_weight(dy, x, g, plan.chunk)
