"""``"im2col"``: the input windows copied into a column buffer (N, C*KH*KW, OH*OW), then one batched
GEMM per chunk of images straight into NCHW (gpuconv/backend/cuda/conv_im2col.py; on the numpy
backend gpuconv/backend/numpy/conv.py). The batch is cut into chunks of whole images whose columns
fit ``gpuconv.flags.workspace_limit``."""

from __future__ import annotations

from typing import Any

from ... import flags
from ..conv_geometry import ConvGeometry
from .base import ConvAlgorithm, Plan


def weight_bytes(g: ConvGeometry, itemsize: int) -> int:
    kh, kw = g.kernel_size
    return g.c_out * (g.c_in // g.groups) * kh * kw * itemsize


def transposed_weight_bytes(g: ConvGeometry, itemsize: int) -> int:
    """The transposed weights (G, rows, Kg) that backward data multiplies by: a copy, except when
    rows or Kg is 1 (depthwise, one filter per group), where the transpose is already contiguous."""
    kh, kw = g.kernel_size
    copied = (g.c_in // g.groups) * kh * kw > 1 and g.c_out // g.groups > 1
    return weight_bytes(g, itemsize) if copied else 0


def _bytes_per_image(g: ConvGeometry, direction: str, itemsize: int) -> int:
    """One image's columns, and in backward weight its dy copied into the GEMM's layout."""
    kh, kw = g.kernel_size
    l_size = g.out_size[0] * g.out_size[1]
    per_image = g.c_in * kh * kw * l_size * itemsize
    if direction == "backward_weight":
        per_image += g.c_out * l_size * itemsize
    return per_image


def column_workspace(g: ConvGeometry, direction: str, itemsize: int, chunk: int) -> int:
    """Bytes the column code allocates in ``direction`` with ``chunk`` images per chunk (im2col,
    and gemm's backward weight: the same code, the columns of a 1x1 kernel being x itself)."""
    workspace = chunk * _bytes_per_image(g, direction, itemsize)
    if direction == "backward_data":
        workspace += transposed_weight_bytes(g, itemsize)
    elif direction == "backward_weight":
        # dweight^T summed per group (G > 1), and each later chunk's dweight before it is added
        workspace += weight_bytes(g, itemsize) * ((g.groups > 1) + (chunk < g.n))
    return workspace


def column_plan(g: ConvGeometry, direction: str, itemsize: int, limit: int | None) -> Plan:
    """As many whole images per chunk as fit ``limit`` bytes (None: ``gpuconv.flags.workspace_limit``)
    of column buffers, at least one, and :func:`column_workspace` for that chunk."""
    limit = flags.workspace_limit if limit is None else limit
    chunk = max(1, min(g.n, limit // max(1, _bytes_per_image(g, direction, itemsize))))
    return Plan(chunk, column_workspace(g, direction, itemsize, chunk))


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
