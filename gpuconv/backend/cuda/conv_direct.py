"""Launchers for kernels/conv_direct.cu (shared by the cupy and emulated backends).

``g`` is a ``gpuconv.functional.conv.ConvGeometry``. The forward runs version 2 (tiled, shared
memory, register blocking over output channels) unless its shared-memory tile would exceed 48 KiB
(huge kernels or dilations), where it falls back to version 1; ``version=1`` forces the reference.
Backward data with stride 1 is the forward v2 kernel run on dy with the flipped, transposed
weights (a gather: the direct transposed convolution reusing the forward's tiling, "version 2");
with larger strides it runs the tiled v3 gather (the same tiling, stride-aware), or the v1 gather
when v3's tile would exceed 48 KiB. Backward weight runs the tiled two-pass v2 (partial sums per split
of the N*OH rows, then a sum in a fixed order) when its tile fits, else v1. The only workspace is
the flipped weights (stride-1 backward data) and the v2 partial sums: :func:`workspace_bytes`, which
the ``"direct"`` algorithm of gpuconv.functional.conv_algos reports through
``conv2d_direct_workspace``.
"""

from __future__ import annotations

import numpy as np

# CONV_TILE_W, CONV_THREADS_H, CONV_CO_BLOCK, CONV_W_PITCH in conv_direct.cu; each thread computes 2
# output rows.
TILE_W, THREADS_H, CO_BLOCK, W_PITCH = 16, 8, 8, 9
TILE_H = 2 * THREADS_H
MAX_SHARED_BYTES = 48 * 1024
MAX_GRID_YZ = 65535
# conv2d_direct_backward_weight_v2: threads per block (one tap each, or more per tap), blocks to aim for.
BWW_THREADS, BWW_TARGET_BLOCKS = 256, 1024


def forward_v2_row_stride(g, itemsize: int) -> int:
    """Elements from one row of conv2d_direct_forward_v2's shared input patch to the next: its width
    PW (at horizontal stride 2 the kernel stores a row's odd columns, then its even ones), padded
    for float32 so that the two patch rows a warp reads (threadIdx.y and threadIdx.y + 1, sh rows
    apart, 16 lanes on 16 consecutive words each at horizontal stride 1 and 2) fall in different
    banks: sh * stride must be 16 modulo 32 banks. At larger horizontal strides the lanes read
    every sw-th word; the rows are then left unpadded. A float64 half-warp fills all 32 banks at
    stride 1 and 2, so float64 is not padded."""
    (kw, (sh, sw), dw) = g.kernel_size[1], g.stride, g.dilation[1]
    pw = (TILE_W - 1) * sw + (kw - 1) * dw + 1
    if itemsize == 4 and sw in (1, 2):
        for stride in range(pw, pw + 32):
            if sh * stride % 32 == 16:
                return stride
    return pw


def forward_v2_shared_bytes(g, itemsize: int) -> int:
    """Dynamic shared memory of conv2d_direct_forward_v2 for ``g``."""
    (kh, kw), sh, dh = g.kernel_size, g.stride[0], g.dilation[0]
    ph = (TILE_H - 1) * sh + (kh - 1) * dh + 1
    return (ph * forward_v2_row_stride(g, itemsize) + W_PITCH * kh * kw) * itemsize


def backward_data_v3_shared_bytes(g, itemsize: int) -> int:
    """Dynamic shared memory of conv2d_direct_backward_data_v3 for ``g`` (its largest dy patch)."""
    (kh, kw), (sh, sw), (dh, dw) = g.kernel_size, g.stride, g.dilation
    ph = (TILE_H - 1 + (kh - 1) * dh) // sh + 2
    pw = (TILE_W - 1 + (kw - 1) * dw) // sw + 2
    return (ph * pw + W_PITCH * kh * kw) * itemsize


def backward_weight_v2_shared_bytes(g, itemsize: int) -> int:
    """Dynamic shared memory of conv2d_direct_backward_weight_v2_partial for ``g``."""
    (kh, kw), ow = g.kernel_size, g.out_size[1]
    pw = (ow - 1) * g.stride[1] + (kw - 1) * g.dilation[1] + 1
    return max(CO_BLOCK * ow + kh * pw, BWW_THREADS) * itemsize


def backward_weight_v2_splits(g) -> int:
    """How many row ranges the v2 backward weight splits N*OH into (0: v2 does not apply, v1 runs).

    Enough blocks to fill a GPU (BWW_TARGET_BLOCKS), never more splits than rows.
    """
    kh, kw = g.kernel_size
    co_blocks = -(-(g.c_out // g.groups) // CO_BLOCK)
    blocks = g.groups * co_blocks
    rows = g.n * g.out_size[0]
    if (kh * kw > BWW_THREADS or g.c_in // g.groups > MAX_GRID_YZ or blocks > MAX_GRID_YZ
            or backward_weight_v2_shared_bytes(g, 8) > MAX_SHARED_BYTES or rows >= 2**31):
        return 0
    return max(1, min(rows, -(-BWW_TARGET_BLOCKS // (blocks * (g.c_in // g.groups)))))


def workspace_bytes(g, direction: str, itemsize: int) -> int:
    """Bytes the launchers below allocate besides the result of ``direction``: the flipped weights
    of stride-1 backward data (run as a forward), the v2 backward weight's partial sums."""
    kh, kw = g.kernel_size
    weight_bytes = g.c_out * (g.c_in // g.groups) * kh * kw * itemsize
    if direction == "backward_data":
        return weight_bytes if g.stride == (1, 1) else 0
    if direction == "backward_weight":
        return backward_weight_v2_splits(g) * weight_bytes
    return 0


def _geometry_args(g) -> tuple:
    ints = (g.n, g.c_in, g.h, g.w, g.c_out, *g.kernel_size, *g.stride, *g.pad_top_left, *g.dilation,
            *g.out_size, g.groups)
    return tuple(np.int32(v) for v in ints)


class ConvDirectKernels:
    # What the launchers below allocate: the workspace and this backend's own transients are the same.
    conv2d_direct_workspace = staticmethod(workspace_bytes)
    conv2d_direct_transient_bytes = staticmethod(workspace_bytes)

    def conv2d_direct_forward(self, x, weight, bias, g, version: int | None = None):
        y = self.empty((g.n, g.c_out) + g.out_size, x.dtype)
        has_bias = np.int32(bias is not None)
        bias_arg = bias if bias is not None else weight  # ignored by the kernel when has_bias == 0
        args = (x, weight, bias_arg, y, has_bias)
        shared = forward_v2_shared_bytes(g, x.dtype.itemsize)
        co_blocks = -(-(g.c_out // g.groups) // CO_BLOCK)
        grid_y = g.groups * co_blocks
        if version is None:
            version = 2 if shared <= MAX_SHARED_BYTES and grid_y <= MAX_GRID_YZ and g.n <= MAX_GRID_YZ else 1
        if version == 1:
            self.launch_1d(self.kernel("conv_direct.cu", "conv2d_direct_forward_v1", x.dtype), y.size,
                           args + _geometry_args(g))
            return y
        oh, ow = g.out_size
        tiles = -(-oh // TILE_H) * -(-ow // TILE_W)
        kernel = self.kernel("conv_direct.cu", "conv2d_direct_forward_v2", x.dtype)
        row_stride = np.int32(forward_v2_row_stride(g, x.dtype.itemsize))
        kernel((tiles, grid_y, g.n), (TILE_W, THREADS_H), args + (row_stride,) + _geometry_args(g), shared_mem=shared)
        return y

    def conv2d_direct_backward_data(self, dy, weight, g, version: int | None = None):
        ci_blocks = g.groups * -(-(g.c_in // g.groups) // CO_BLOCK)
        if version is None:
            fits = (backward_data_v3_shared_bytes(g, dy.dtype.itemsize) <= MAX_SHARED_BYTES
                    and ci_blocks <= MAX_GRID_YZ and g.n <= MAX_GRID_YZ)
            version = 2 if g.stride == (1, 1) else 3 if fits else 1
        if version == 2:
            if g.stride != (1, 1):
                raise ValueError(f"conv2d_direct_backward_data version 2 needs stride 1, got stride {g.stride}")
            return self._backward_data_as_forward(dy, weight, g)
        dx = self.empty((g.n, g.c_in, g.h, g.w), dy.dtype)
        if version == 3:
            (sh, sw), (dh, dw) = g.stride, g.dilation
            steps = tuple(np.int32(v) for v in (dh // sh, dh % sh, dw // sw, dw % sw))
            tiles = -(-g.h // TILE_H) * -(-g.w // TILE_W)
            kernel = self.kernel("conv_direct.cu", "conv2d_direct_backward_data_v3", dy.dtype)
            kernel((tiles, ci_blocks, g.n), (TILE_W, THREADS_H), (dy, weight, dx) + steps + _geometry_args(g),
                   shared_mem=backward_data_v3_shared_bytes(g, dy.dtype.itemsize))
            return dx
        kernel = self.kernel("conv_direct.cu", "conv2d_direct_backward_data", dy.dtype)
        self.launch_1d(kernel, dx.size, (dy, weight, dx) + _geometry_args(g))
        return dx

    def _backward_data_as_forward(self, dy, weight, g):
        """Stride 1: dx is the forward convolution of dy with the kernel flipped and its channel
        axes swapped per group, padded by (dilated span - padding) on each side."""
        kh, kw = g.kernel_size
        cg, kg = g.c_in // g.groups, g.c_out // g.groups
        flipped = self.xp.ascontiguousarray(
            weight.reshape(g.groups, kg, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        ).reshape(g.c_in, kg, kh, kw)
        span_h, span_w = g.dilation[0] * (kh - 1), g.dilation[1] * (kw - 1)
        pt, pb, pl, pr = g.padding
        gt = g._replace(c_in=g.c_out, h=g.out_size[0], w=g.out_size[1], c_out=g.c_in,
                        padding=(span_h - pt, span_h - pb, span_w - pl, span_w - pr), out_size=(g.h, g.w))
        return self.conv2d_direct_forward(dy, flipped, None, gt)

    def conv2d_direct_backward_weight(self, dy, x, g, version: int | None = None):
        splits = backward_weight_v2_splits(g)
        if version is None:
            version = 2 if splits else 1
        if version == 2:
            return self._backward_weight_v2(dy, x, g, splits)
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

    def _backward_weight_v2(self, dy, x, g, splits):
        kh, kw = g.kernel_size
        cg = g.c_in // g.groups
        dw = self.empty((g.c_out, cg, kh, kw), x.dtype)
        partial = self.empty((splits,) + dw.shape, x.dtype)
        rows = g.n * g.out_size[0]
        co_blocks = -(-(g.c_out // g.groups) // CO_BLOCK)
        kernel = self.kernel("conv_direct.cu", "conv2d_direct_backward_weight_v2_partial", x.dtype)
        kernel((splits, g.groups * co_blocks, cg), (BWW_THREADS,),
               (dy, x, partial, np.int32(-(-rows // splits)), np.int32(BWW_THREADS // (kh * kw))) + _geometry_args(g),
               shared_mem=backward_weight_v2_shared_bytes(g, x.dtype.itemsize))
        summing = self.kernel("conv_direct.cu", "conv2d_direct_backward_weight_v2_sum", x.dtype)
        self.launch_1d(summing, dw.size, (partial, dw, np.int32(splits), np.int32(dw.size)))
        return dw
