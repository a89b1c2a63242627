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
