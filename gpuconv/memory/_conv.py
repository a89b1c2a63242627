"""What a convolution allocates besides its results, from shapes: the adapter between the memory
estimator and the conv code.

On the cupy and emulated backends the conv code itself says what it allocates, exactly, per
direction (``F.conv2d_workspace_bytes(..., direction=)``, from the algorithm's ``plan`` in
gpuconv.functional.conv_algos). The numpy backend cuts the batch finer to stay in cache and makes
padded copies of the input, so for it the backend's ``conv2d_im2col_transient_bytes`` and
``conv2d_direct_transient_bytes`` (gpuconv/backend/numpy/conv_transient.py) replay each
direction's allocations in order and return the peak above the results.
``tests/test_memory.py`` compares both with tracemalloc measurements of the real ops, so a change in
the conv code shows up there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..backend import backend_class
from ..functional._memory import numpy_buffer_bytes
from ..functional.conv_algo import plan

DIRECTIONS = ("forward", "backward_data", "backward_weight")


def conv_transient_bytes(x_shape, weight_shape, dtype: Any, stride=1, padding=0, dilation=1, groups: int = 1,
                         algo: str = "auto", *, direction: str, backend: str, bias: bool = False) -> int:
    """Peak bytes one direction of a convolution allocates above its results (y; dx; dweight).

    Args:
        x_shape, weight_shape, stride, padding, dilation, groups, algo: as given to ``F.conv2d``.
        direction: ``"forward"``, ``"backward_data"`` or ``"backward_weight"``.
        backend: ``"numpy"``, ``"emulated"`` or ``"cupy"`` (the kernel backends run the same code).
        bias: whether the forward adds a bias (``y += bias`` broadcasts through one NumPy iterator
            buffer on NumPy arrays; the direct kernels add it themselves).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    g = F.conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups)
    if algo == "auto":
        algo = F.choose_algo(x_shape, weight_shape, stride, padding, dilation, groups, direction=direction,
                             dtype=dtype)
    target = backend_class(backend)
    if target.capabilities.kernels:
        # The kernels add the bias themselves (direct) or in the GEMM's epilogue kernel.
        return int(F.conv2d_workspace_bytes(x_shape, weight_shape, dtype, stride, padding, dilation, groups, algo,
                                            direction=direction))
    itemsize = np.dtype(dtype).itemsize
    add_bias = 0
    if bias and direction == "forward":
        add_bias = numpy_buffer_bytes(g.n * g.c_out * g.out_size[0] * g.out_size[1], itemsize)
    if algo == "gemm" and direction != "backward_weight":
        return add_bias  # one batched GEMM straight into the result
    if algo == "direct":
        return add_bias + target.conv2d_direct_transient_bytes(g, direction, itemsize)
    # im2col, and gemm's backward_weight (the im2col code: 1x1 columns are x itself)
    chunk = plan(g, algo, direction, itemsize).chunk
    return add_bias + target.conv2d_im2col_transient_bytes(g, direction, itemsize, chunk)
