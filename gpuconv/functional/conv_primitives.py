"""The convolution primitives of the backend contract (gpuconv/backend/base.py): one forward,
backward-data and backward-weight primitive per algorithm of gpuconv/functional/conv_algos/, each
given the layer's :class:`~gpuconv.functional.conv_geometry.ConvGeometry` ``g`` and C-contiguous
(N, C, H, W) arrays. The im2col primitives also take ``chunk``, the images per column buffer that
the algorithm's ``plan`` chose for the workspace limit. Beside them, from shapes alone, what those
primitives allocate and which geometries the kernels can address (:class:`ConvMemoryPrimitives`)."""

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


class ConvMemoryPrimitives(Protocol):
    """What the convolution primitives allocate and where the kernels stop, from shapes alone
    (``g`` a ConvGeometry, ``direction`` "forward", "backward_data" or "backward_weight",
    ``itemsize`` 4 or 8; class-level facts, so the memory estimator asks the class of the backend
    it stands in for).

    The ``*_workspace`` methods and ``conv2d_implicit_gemm_unsupported_reason`` are the KERNEL
    backends' facts (what the cupy and emulated launchers allocate besides the result; what the
    implicit-GEMM kernels' 32-bit indexing cannot address), and every backend reports them alike:
    they define ``F.conv2d_workspace_bytes`` and the algorithms' applicability on every backend
    (see gpuconv/functional/conv_algos/__init__.py). The ``*_transient_bytes`` methods are this
    backend's own peak above the result (on the kernel backends the workspace again; on numpy its
    replay of the NumPy code's allocations), which the memory estimator counts."""

    def conv2d_im2col_workspace(self, g: Any, direction: str, itemsize: int, chunk: int) -> int:
        """Bytes of the im2col launchers' buffers with ``chunk`` images per chunk."""

    def conv2d_gemm_workspace(self, g: Any, direction: str, itemsize: int) -> int:
        """Bytes of the 1x1 "gemm" launchers' buffers (forward and backward data)."""

    def conv2d_direct_workspace(self, g: Any, direction: str, itemsize: int) -> int:
        """Bytes of the direct kernels' buffers (flipped weights, split partial sums)."""

    def conv2d_implicit_gemm_workspace(self, g: Any, direction: str, itemsize: int) -> int:
        """Bytes of the implicit GEMM's buffers (backward weight's split-K partial sums)."""

    def conv2d_implicit_gemm_unsupported_reason(self, g: Any) -> str | None:
        """Why the implicit-GEMM kernels cannot address ``g``, or None."""

    def conv2d_im2col_transient_bytes(self, g: Any, direction: str, itemsize: int, chunk: int) -> int:
        """Peak bytes this backend's im2col primitive allocates above its result."""

    def conv2d_direct_transient_bytes(self, g: Any, direction: str, itemsize: int) -> int:
        """Peak bytes this backend's direct primitive allocates above its result."""


@needs_capability("conv_bias_epilogue")
class BiasEpiloguePrimitives(Protocol):
    """The bias added to a convolution's output by one kernel (backends with
    ``capabilities.conv_bias_epilogue``; elsewhere ``y += bias`` broadcasts)."""

    def conv2d_bias_epilogue(self, y: Any, bias: Any) -> Any:
        """y (N, C, H, W) += bias[c] in place."""
