"""Naive loop implementations in float64: obviously correct, for tiny sizes only.

Every op on every backend is compared with these. Padding is given per side as
(top, bottom, left, right) so asymmetric padding can be expressed.
"""

from __future__ import annotations

import numpy as np


def out_size(size, kernel, stride, pad_before, pad_after, dilation):
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kernel_size, stride, padding, dilation):
    """(N, C, H, W) -> (N, C*KH*KW, OH*OW), zero padding; padding = (top, bottom, left, right)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = out_size(h, kh, sh, pt, pb, dh), out_size(w, kw, sw, pl, pr, dw)
    cols = np.zeros((n, c * kh * kw, oh * ow))
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    row = (ch * kh + i) * kw + j
                    for y in range(oh):
                        for z in range(ow):
                            yy, zz = y * sh - pt + i * dh, z * sw - pl + j * dw
                            if 0 <= yy < h and 0 <= zz < w:
                                cols[b, row, y * ow + z] = x[b, ch, yy, zz]
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """Adjoint of :func:`im2col`: (N, C*KH*KW, OH*OW) -> (N, C, H, W), summing overlaps."""
    cols = np.asarray(cols, dtype=np.float64)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = out_size(h, kh, sh, pt, pb, dh), out_size(w, kw, sw, pl, pr, dw)
    x = np.zeros((n, c, h, w))
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    row = (ch * kh + i) * kw + j
                    for y in range(oh):
                        for z in range(ow):
                            yy, zz = y * sh - pt + i * dh, z * sw - pl + j * dw
                            if 0 <= yy < h and 0 <= zz < w:
                                x[b, ch, yy, zz] += cols[b, row, y * ow + z]
    return x


# ---- convolution (conv2d) ---------------------------------------------------------------------------
def conv2d(x, weight, bias, stride, padding, dilation, groups):
    """Cross-correlation, PyTorch's conv2d; padding = (top, bottom, left, right)."""
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    n, c, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, padding, dilation
    oh, ow = out_size(h, kh, sh, pt, pb, dh), out_size(w, kw, sw, pl, pr, dw)
    kg = c_out // groups
    y = np.zeros((n, c_out, oh, ow))
    for b in range(n):
        for co in range(c_out):
            grp = co // kg
            for oy in range(oh):
                for ox in range(ow):
                    total = 0.0 if bias is None else float(bias[co])
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                yy, xx = oy * sh - pt + i * dh, ox * sw - pl + j * dw
                                if 0 <= yy < h and 0 <= xx < w:
                                    total += x[b, grp * cg + ci, yy, xx] * weight[co, ci, i, j]
                    y[b, co, oy, ox] = total
    return y


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups):
    """(dx, dweight, dbias) of :func:`conv2d`, by scattering each output's gradient back."""
    dy = np.asarray(dy, dtype=np.float64)
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    n, c, h, w = x.shape
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (pt, _, pl, _), (dh, dw) = stride, padding, dilation  # dy gives OH, OW
    oh, ow = dy.shape[2:]
    kg = c_out // groups
    dx, dweight = np.zeros_like(x), np.zeros_like(weight)
    for b in range(n):
        for co in range(c_out):
            grp = co // kg
            for oy in range(oh):
                for ox in range(ow):
                    g = dy[b, co, oy, ox]
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                yy, xx = oy * sh - pt + i * dh, ox * sw - pl + j * dw
                                if 0 <= yy < h and 0 <= xx < w:
                                    dx[b, grp * cg + ci, yy, xx] += g * weight[co, ci, i, j]
                                    dweight[co, ci, i, j] += g * x[b, grp * cg + ci, yy, xx]
    return dx, dweight, dy.sum(axis=(0, 2, 3))
