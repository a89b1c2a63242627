"""``"gemm"``: a 1x1 kernel with stride 1 and no padding, one batched GEMM over the batch, no
columns (forward and backward data; the backend says what they allocate,
``be.conv2d_gemm_workspace(g, direction, itemsize)``); backward weight is im2col's code, whose
columns are then x itself."""

from __future__ import annotations

from typing import Any

from ...backend import get_backend
from ..conv_geometry import ConvGeometry
from .base import ConvAlgorithm, Plan
from .im2col import column_plan


class Gemm(ConvAlgorithm):
    name = "gemm"
    description = "1x1 kernel, stride 1, no padding only"

    def unsupported_reason(self, g: ConvGeometry, direction: str) -> str | None:
        if g.is_pointwise:
            return None
        return (f"needs a 1x1 kernel with stride 1 and no padding ({direction}), got kernel {g.kernel_size}, "
                f"stride {g.stride}, padding {g.padding} (top, bottom, left, right)")

    def plan(self, g: ConvGeometry, direction: str, itemsize: int, limit: int | None = None) -> Plan:
        if direction == "backward_weight":
            return column_plan(g, direction, itemsize, limit)
        return Plan(g.n, get_backend().conv2d_gemm_workspace(g, direction, itemsize))

    def forward(self, be: Any, x: Any, weight: Any, bias: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_gemm_forward(x, weight, bias, g)

    def backward_data(self, be: Any, dy: Any, weight: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_gemm_backward_data(dy, weight, g)

    def backward_weight(self, be: Any, dy: Any, x: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_im2col_backward_weight(dy, x, g, plan.chunk)
