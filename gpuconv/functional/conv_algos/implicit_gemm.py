"""``"implicit_gemm"``: kernels/conv_implicit_gemm.cu (gpuconv/backend/cuda/conv_implicit_gemm.py):
each direction is one tiled GEMM whose operands are gathered from x, dy and the weights as the
tiles are loaded (no column buffer); the only workspace is backward weight's split-K partial sums,
added in a fixed order (deterministic). On the numpy backend it runs the im2col code.

The kernels' 32-bit indexing bounds the geometries it runs, and its split-K plan its workspace:
both are the backend's to say (``be.conv2d_implicit_gemm_unsupported_reason(g)``,
``be.conv2d_implicit_gemm_workspace(g, direction, itemsize)``)."""

from __future__ import annotations

from typing import Any

from ...backend import get_backend
from ..conv_geometry import ConvGeometry
from .base import ConvAlgorithm, Plan


class ImplicitGemm(ConvAlgorithm):
    name = "implicit_gemm"
    description = ("kernels/conv_implicit_gemm.cu: GEMM tiles gathered from the input, no column buffer "
                   "(TF32 tensor cores with --tf32); on the numpy backend the im2col code")

    def unsupported_reason(self, g: ConvGeometry, direction: str) -> str | None:
        reason = get_backend().conv2d_implicit_gemm_unsupported_reason(g)
        return None if reason is None else f"cannot run this convolution ({direction}): {reason}"

    def plan(self, g: ConvGeometry, direction: str, itemsize: int, limit: int | None = None) -> Plan:
        return Plan(g.n, get_backend().conv2d_implicit_gemm_workspace(g, direction, itemsize))

    def forward(self, be: Any, x: Any, weight: Any, bias: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_implicit_gemm_forward(x, weight, bias, g)

    def backward_data(self, be: Any, dy: Any, weight: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_implicit_gemm_backward_data(dy, weight, g)

    def backward_weight(self, be: Any, dy: Any, x: Any, g: ConvGeometry, plan: Plan) -> Any:
        return be.conv2d_implicit_gemm_backward_weight(dy, x, g)
