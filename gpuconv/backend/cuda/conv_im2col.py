"""Convolution by GEMM on the cupy and emulated backends: im2col + GEMM, and the 1x1 "gemm" path.

Every GEMM writes its result where it belongs: the forward is one batched GEMM per chunk,
weight (G, Kg, R) x columns (Nc, G, R, L) -> y (Nc, G, Kg, L), which IS NCHW, so there is no
transpose afterwards, and the bias is added by one epilogue kernel (kernels/conv_epilogue.cu).
Backward data is the same arrangement with the transposed weights, straight from dy (no dy
reshape copy), then col2im into dx. Backward weight needs one reduction over N*OH*OW, which no
single GEMM can read from NCHW dy, so dy is copied once per chunk into the GEMM's layout.

``g`` is a ``gpuconv.functional.conv.ConvGeometry``; ``chunk`` is the number of images per chunk
(the ``plan`` of the ``"im2col"`` and ``"gemm"`` algorithms in gpuconv/functional/conv_algos/).
Each buffer is allocated once per call, and what is allocated here is exactly what
:func:`column_workspace` and :func:`gemm_workspace` count, which those plans report.
"""

from __future__ import annotations

import math

import numpy as np

from ... import flags
from .tf32 import cublas_tf32, round_to_tf32

# Activations the bias epilogue can apply in the same pass (the hook for fusing them later).
ACTIVATIONS = {None: 0, "relu": 1}
EPILOGUE_BLOCK = 256


def weight_bytes(g, itemsize: int) -> int:
    kh, kw = g.kernel_size
    return g.c_out * (g.c_in // g.groups) * kh * kw * itemsize


def transposed_weight_bytes(g, itemsize: int) -> int:
    """The transposed weights (G, rows, Kg) that backward data multiplies by: a copy, except when
    rows or Kg is 1 (depthwise, one filter per group), where the transpose is already contiguous."""
    kh, kw = g.kernel_size
    copied = (g.c_in // g.groups) * kh * kw > 1 and g.c_out // g.groups > 1
    return weight_bytes(g, itemsize) if copied else 0


def column_workspace(g, direction: str, itemsize: int, chunk: int) -> int:
    """Bytes the im2col launchers below allocate besides the result of ``direction`` with ``chunk``
    images per chunk: the column buffer (and dy's copy, backward weight), the transposed weights
    (backward data), dweight^T summed per group (G > 1) and each later chunk's dweight before it is
    added (backward weight)."""
    kh, kw = g.kernel_size
    l_size = g.out_size[0] * g.out_size[1]
    per_image = g.c_in * kh * kw * l_size * itemsize
    if direction == "backward_weight":
        per_image += g.c_out * l_size * itemsize
    workspace = chunk * per_image
    if direction == "backward_data":
        workspace += transposed_weight_bytes(g, itemsize)
    elif direction == "backward_weight":
        workspace += weight_bytes(g, itemsize) * ((g.groups > 1) + (chunk < g.n))
    return workspace


def gemm_workspace(g, direction: str, itemsize: int) -> int:
    """Bytes the "gemm" launchers below allocate besides their result: the transposed weights of
    backward data (its backward weight is the im2col launcher's: :func:`column_workspace`)."""
    return transposed_weight_bytes(g, itemsize) if direction == "backward_data" else 0


def _chunks(n: int, chunk: int):
    for start in range(0, n, chunk):
        yield start, min(n, start + chunk)


class ConvIm2colKernels:
    # What the launchers below allocate (see ConvPrimitives in gpuconv/functional/conv_primitives.py):
    # the workspace and this backend's own transients are the same here.
    conv2d_im2col_workspace = staticmethod(column_workspace)
    conv2d_im2col_transient_bytes = staticmethod(column_workspace)
    conv2d_gemm_workspace = staticmethod(gemm_workspace)

    # ---- GEMM, with TF32 when gpuconv.flags.allow_tf32 says so --------------------------------------
    def conv_gemm(self, a, b, out):
        """``out[...] = a @ b`` (2-D or batched with broadcasting), TF32 if allowed. On the emulated
        backend (NumPy arrays) TF32 is emulated by rounding the operands to 10 mantissa bits."""
        if flags.allow_tf32 and a.dtype == np.float32:
            if self.xp is np:
                return np.matmul(round_to_tf32(a), round_to_tf32(b), out=out)
            with cublas_tf32(self.xp):
                return self.xp.matmul(a, b, out=out)
        return self.xp.matmul(a, b, out=out)

    def conv2d_bias_epilogue(self, y, bias, activation: str | None = None) -> None:
        """In place: y (N, C, H, W) += bias[c] (when given), then the activation. The kernel, grid and
        scalar arguments are computed once per (shape, dtype, bias or not, activation): converting
        them costs more host time than the launch."""
        key = (self.module_cache_key(), y.shape, y.dtype, bias is None, activation)
        kernel, grid, block, scalars = self.cached_plan(
            "_epilogue_plans", key, lambda: self._epilogue_plan(y.shape, y.dtype, bias is not None, activation))
        kernel(grid, block, (y, y if bias is None else bias) + scalars)

    def _epilogue_plan(self, shape, dtype, has_bias: bool, activation: str | None):
        n, c = shape[:2]
        plane = math.prod(shape[2:])
        wide = n * c * plane >= 2**31
        kernel = self.kernel("conv_epilogue.cu", "conv2d_bias_act_i64" if wide else "conv2d_bias_act_i32", dtype)
        grid = (min(-(-plane // EPILOGUE_BLOCK), 1024), min(n * c, 65535))
        scalars = (np.int32(has_bias), np.int32(n * c), np.int32(c), np.int64(plane), np.int32(ACTIVATIONS[activation]))
        return kernel, grid, (EPILOGUE_BLOCK,), scalars

    # ---- im2col --------------------------------------------------------------------------------------
    def conv2d_im2col_forward(self, x, weight, bias, g, chunk):
        kh, kw = g.kernel_size
        l_size = g.out_size[0] * g.out_size[1]
        groups, rows, kg = g.groups, (g.c_in // g.groups) * kh * kw, g.c_out // g.groups
        w3 = weight.reshape(groups, kg, rows)
        y = self.empty((g.n, g.c_out) + g.out_size, x.dtype)
        y4 = y.reshape(g.n, groups, kg, l_size)
        buf = self.empty((min(chunk, g.n) * g.c_in * kh * kw * l_size,), x.dtype)
        for start, stop in _chunks(g.n, chunk):
            nc = stop - start
            cols = buf[:nc * g.c_in * kh * kw * l_size].reshape(nc, g.c_in * kh * kw, l_size)
            self._conv_cols(x[start:stop], g, "nkl", cols)
            self.conv_gemm(w3, cols.reshape(nc, groups, rows, l_size), out=y4[start:stop])
        if bias is not None:
            self.conv2d_bias_epilogue(y, bias)
        return y

    def _conv_cols(self, x, g, layout, out):
        return self.im2col(x, g.kernel_size, g.stride, g.pad_top_left, g.dilation, g.out_size, layout, out=out)

    def conv2d_im2col_backward_data(self, dy, weight, g, chunk):
        kh, kw = g.kernel_size
        l_size = g.out_size[0] * g.out_size[1]
        groups, rows, kg = g.groups, (g.c_in // g.groups) * kh * kw, g.c_out // g.groups
        wt = self.contiguous(weight.reshape(groups, kg, rows).transpose(0, 2, 1))
        dy4 = dy.reshape(g.n, groups, kg, l_size)
        dx = self.empty((g.n, g.c_in, g.h, g.w), dy.dtype)
        buf = self.empty((min(chunk, g.n) * g.c_in * kh * kw * l_size,), dy.dtype)
        for start, stop in _chunks(g.n, chunk):
            nc = stop - start
            dcols = buf[:nc * g.c_in * kh * kw * l_size].reshape(nc, g.c_in * kh * kw, l_size)
            self.conv_gemm(wt, dy4[start:stop], out=dcols.reshape(nc, groups, rows, l_size))
            self.col2im(dcols, (nc, g.c_in, g.h, g.w), g.kernel_size, g.stride, g.pad_top_left, g.dilation,
                        g.out_size, "nkl", out=dx[start:stop])
        return dx

    def conv2d_im2col_backward_weight(self, dy, x, g, chunk):
        kh, kw = g.kernel_size
        l_size = g.out_size[0] * g.out_size[1]
        groups, rows, kg = g.groups, (g.c_in // g.groups) * kh * kw, g.c_out // g.groups
        dw = self.empty((g.c_out, g.c_in // groups, kh, kw), x.dtype)
        dw3 = dw.reshape(groups, kg, rows)
        width = min(chunk, g.n) * l_size
        cols_buf = self.empty((groups * rows * width,), x.dtype)
        dy_buf = self.empty((g.c_out * width,), x.dtype)
        # G == 1: dw = dy (K, Nc*L) @ columns^T, written in place (a transposed operand is free in a
        # 2-D GEMM). G > 1: a batched GEMM needs both operands contiguous per group, so it sums
        # dw^T = columns (G, R, Nc*L) @ dy^T (G, Nc*L, Kg) in `acc` and transposes that small result
        # into dw at the end. After the first chunk, each chunk's GEMM goes to `part`, then is added.
        acc = self.empty((groups, rows, kg), x.dtype) if groups > 1 else dw3[0]
        part = self.empty(acc.shape, x.dtype) if chunk < g.n else None
        for index, (start, stop) in enumerate(_chunks(g.n, chunk)):
            nc = stop - start
            cols = cols_buf[:groups * rows * nc * l_size].reshape(groups * rows, nc * l_size)
            self._conv_cols(x[start:stop], g, "knl", cols)
            dy_chunk = dy[start:stop].reshape(nc, groups, kg, l_size)
            target = acc if index == 0 else part
            if groups == 1:
                dyk = dy_buf[:g.c_out * nc * l_size].reshape(g.c_out, nc, l_size)
                self.copy_into(dyk, dy_chunk[:, 0].transpose(1, 0, 2))
                self.conv_gemm(dyk.reshape(g.c_out, nc * l_size), cols.T, out=target)
            else:
                dyt = dy_buf[:g.c_out * nc * l_size].reshape(groups, nc, l_size, kg)
                self.copy_into(dyt, dy_chunk.transpose(1, 0, 3, 2))
                self.conv_gemm(cols.reshape(groups, rows, nc * l_size), dyt.reshape(groups, nc * l_size, kg),
                               out=target)
            if index > 0:
                self.add_(acc, part)
        if groups > 1:
            self.copy_into(dw3, acc.transpose(0, 2, 1))
        return dw

    # ---- "gemm": 1x1 kernel, stride 1, no padding ------------------------------------------------------
    def conv2d_gemm_forward(self, x, weight, bias, g):
        groups, cg, kg = g.groups, g.c_in // g.groups, g.c_out // g.groups
        l_size = g.h * g.w
        y = self.empty((g.n, g.c_out, g.h, g.w), x.dtype)
        self.conv_gemm(weight.reshape(groups, kg, cg), x.reshape(g.n, groups, cg, l_size),
                       out=y.reshape(g.n, groups, kg, l_size))
        if bias is not None:
            self.conv2d_bias_epilogue(y, bias)
        return y

    def conv2d_gemm_backward_data(self, dy, weight, g):
        groups, cg, kg = g.groups, g.c_in // g.groups, g.c_out // g.groups
        l_size = g.h * g.w
        wt = self.contiguous(weight.reshape(groups, kg, cg).transpose(0, 2, 1))
        dx = self.empty((g.n, g.c_in, g.h, g.w), dy.dtype)
        self.conv_gemm(wt, dy.reshape(g.n, groups, kg, l_size), out=dx.reshape(g.n, groups, cg, l_size))
        return dx
