"""The convolution primitives of the backend contract (gpuconv/backend/base.py): one forward,
backward-data and backward-weight primitive per algorithm of gpuconv/functional/conv_algo.py, each
given the layer's :class:`~gpuconv.functional.conv_geometry.ConvGeometry` ``g`` and C-contiguous
(N, C, H, W) arrays. The im2col primitives also take ``chunk``, the images per column buffer that
``conv_algo.plan`` chose for the workspace limit."""

from __future__ import annotations

from typing import Any, Protocol

from ..backend.base import needs_capability


class ConvPrimitives(Protocol):
    """Every algorithm's three directions (``gemm`` has no backward-weight primitive of its own:
    its weight gradient is im2col's)."""

    def conv2d_im2col_forward(self, x: Any, weight: Any, bias: Any, g: Any, chunk: int) -> Any:
        """y: column buffers of ``chunk`` images, one batched GEMM each, then the bias."""

    def conv2d_im2col_backward_data(self, dy: Any, weight: Any, g: Any, chunk: int) -> Any:
        """dx: the GEMM into column buffers, then col2im."""

    def conv2d_im2col_backward_weight(self, dy: Any, x: Any, g: Any, chunk: int) -> Any:
        """dweight: column buffers and one GEMM per chunk, summed."""

    def conv2d_gemm_forward(self, x: Any, weight: Any, bias: Any, g: Any) -> Any:
        """y of a 1x1, stride-1, unpadded convolution as one batched GEMM (no column buffer)."""

    def conv2d_gemm_backward_data(self, dy: Any, weight: Any, g: Any) -> Any:
        """dx of the same as one batched GEMM."""

    def conv2d_direct_forward(self, x: Any, weight: Any, bias: Any, g: Any) -> Any:
        """y without a column buffer (a tap loop)."""

    def conv2d_direct_backward_data(self, dy: Any, weight: Any, g: Any) -> Any:
        """dx without a column buffer."""

    def conv2d_direct_backward_weight(self, dy: Any, x: Any, g: Any) -> Any:
        """dweight without a column buffer."""

    def conv2d_implicit_gemm_forward(self, x: Any, weight: Any, bias: Any, g: Any) -> Any:
        """y as a GEMM whose operand tiles are gathered from x on the fly."""

    def conv2d_implicit_gemm_backward_data(self, dy: Any, weight: Any, g: Any) -> Any:
        """dx as an implicit GEMM."""

    def conv2d_implicit_gemm_backward_weight(self, dy: Any, x: Any, g: Any) -> Any:
        """dweight as an implicit GEMM."""


@needs_capability("conv_bias_epilogue")
class BiasEpiloguePrimitives(Protocol):
    """The bias added to a convolution's output by one kernel (backends with
    ``capabilities.conv_bias_epilogue``; elsewhere ``y += bias`` broadcasts)."""

    def conv2d_bias_epilogue(self, y: Any, bias: Any) -> Any:
        """y (N, C, H, W) += bias[c] in place."""
