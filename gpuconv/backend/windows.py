"""Pooling-window facts shared by a backend's code and the memory formulas that describe it
(gpuconv/functional/pool.py's ``max_pool2d_numpy_transient_bytes``), so both decide alike."""

from __future__ import annotations


def is_pairwise(x_shape, kernel_size, stride, padding, dilation, out_size) -> bool:
    """2x2 windows with stride 2, no padding and no overhang (LeNet's and VGG's pools)."""
    return (tuple(kernel_size) == tuple(stride) == (2, 2) and tuple(padding) == (0, 0)
            and tuple(dilation) == (1, 1) and 2 * out_size[0] <= x_shape[2] and 2 * out_size[1] <= x_shape[3])
