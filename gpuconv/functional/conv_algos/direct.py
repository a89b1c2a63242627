"""``"direct"``: no column buffer. kernels/conv_direct.cu on the cupy and emulated backends
(gpuconv/backend/cuda/conv_direct.py); on the numpy backend one GEMM per kernel tap on a shifted
view of the input (gpuconv/backend/numpy/conv_direct.py), the low-memory path.

Its workspace depends on which kernel version the launcher picks (the flipped weights of stride-1
backward data, the partial sums of the split backward weight), so it asks the backend:
``be.conv2d_direct_workspace(g, direction, itemsize)``."""

from __future__ import annotations

from typing import Any

from ...backend import get_backend
from ..conv_geometry import ConvGeometry
from .base import ConvAlgorithm, Plan


class Direct(ConvAlgorithm):
    name = "direct"
    description = "kernels/conv_direct.cu; on the numpy backend one GEMM per kernel tap, no columns"

    def plan(self, g: ConvGeometry, direction: str, itemsize: int, limit: int | None = None) -> Plan:
        return Plan(g.n, get_backend().conv2d_direct_workspace(g, direction, itemsize))

    def forward(self, be: Any, x: Any, weight: Any, bias: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_direct_forward(x, weight, bias, g)

    def backward_data(self, be: Any, dy: Any, weight: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_direct_backward_data(dy, weight, g)

    def backward_weight(self, be: Any, dy: Any, x: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_direct_backward_weight(dy, x, g)
