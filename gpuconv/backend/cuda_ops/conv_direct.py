"""Launchers for kernels/conv_direct.cu (shared by the cupy and emulated backends).

``g`` is a ``gpuconv.functional.conv.ConvGeometry``. The forward runs version 2 (tiled, shared
memory, register blocking over output channels) unless its shared-memory tile would exceed 48 KiB
(huge kernels or dilations), where it falls back to version 1; ``version=1`` forces the reference.
"""

from __future__ import annotations

import numpy as np

# CONV_TILE_W, CONV_THREADS_H, CONV_CO_BLOCK in conv_direct.cu; each thread computes 2 output rows.
TILE_W, THREADS_H, CO_BLOCK = 16, 8, 8
TILE_H = 2 * THREADS_H
MAX_SHARED_BYTES = 48 * 1024
MAX_GRID_YZ = 65535


def forward_v2_shared_bytes(g, itemsize: int) -> int:
    """Dynamic shared memory of conv2d_direct_forward_v2 for ``g``."""
    (kh, kw), (sh, sw), (dh, dw) = g.kernel_size, g.stride, g.dilation
    ph = (TILE_H - 1) * sh + (kh - 1) * dh + 1
    pw = (TILE_W - 1) * sw + (kw - 1) * dw + 1
    return (ph * pw + CO_BLOCK * kh * kw) * itemsize


def _geometry_args(g) -> tuple:
    ints = (g.n, g.c_in, g.h, g.w, g.c_out, *g.kernel_size, *g.stride, *g.pad_top_left, *g.dilation,
            *g.out_size, g.groups)
    return tuple(np.int32(v) for v in ints)


class ConvDirectKernels:
    def conv2d_direct_forward(self, x, weight, bias, g, version: int | None = None):
        y = self.empty((g.n, g.c_out) + g.out_size, x.dtype)
        has_bias = np.int32(bias is not None)
        bias_arg = bias if bias is not None else weight  # ignored by the kernel when has_bias == 0
        args = (x, weight, bias_arg, y, has_bias) + _geometry_args(g)
        shared = forward_v2_shared_bytes(g, x.dtype.itemsize)
        co_blocks = -(-(g.c_out // g.groups) // CO_BLOCK)
        grid_y = g.groups * co_blocks
        if version is None:
            version = 2 if shared <= MAX_SHARED_BYTES and grid_y <= MAX_GRID_YZ and g.n <= MAX_GRID_YZ else 1
        if version == 1:
            self.launch_1d(self.kernel("conv_direct.cu", "conv2d_direct_forward_v1", x.dtype), y.size, args)
            return y
        oh, ow = g.out_size
        tiles = -(-oh // TILE_H) * -(-ow // TILE_W)
        kernel = self.kernel("conv_direct.cu", "conv2d_direct_forward_v2", x.dtype)
        kernel((tiles, grid_y, g.n), (TILE_W, THREADS_H), args, shared_mem=shared)
        return y

    def conv2d_direct_backward_data(self, dy, weight, g):
        dx = self.empty((g.n, g.c_in, g.h, g.w), dy.dtype)
        kernel = self.kernel("conv_direct.cu", "conv2d_direct_backward_data", dy.dtype)
        self.launch_1d(kernel, dx.size, (dy, weight, dx) + _geometry_args(g))
        return dx

    def conv2d_direct_backward_weight(self, dy, x, g):
        kh, kw = g.kernel_size
        dw = self.empty((g.c_out, g.c_in // g.groups, kh, kw), x.dtype)
        positions = g.n * g.out_size[0] * g.out_size[1]
        # A power of two (the tree reduction halves it), no larger than the work needs.
        block = 32
        while block < 256 and block < positions:
            block *= 2
        kernel = self.kernel("conv_direct.cu", "conv2d_direct_backward_weight", x.dtype)
        kernel((dw.size,), (block,), (dy, x, dw) + _geometry_args(g), shared_mem=block * x.dtype.itemsize)
        return dw
