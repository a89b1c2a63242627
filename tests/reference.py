"""Naive loop implementations in float64: obviously correct, for tiny sizes only.

Every op on every backend is compared with these. Padding is given per side as
(top, bottom, left, right) so asymmetric padding can be expressed.
"""

from __future__ import annotations

import numpy as np


def out_size(size, kernel, stride, pad_before, pad_after, dilation):
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _window_taps(x_shape, kernel_size, stride, padding, dilation):
    """Yields (n, c, row, l, y, x) for every window tap that reads input element (n, c, y, x)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = out_size(h, kh, sh, pt, pb, dh), out_size(w, kw, sw, pl, pr, dw)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        for z in range(ow):
                            yy, zz = y * sh - pt + i * dh, z * sw - pl + j * dw
                            if 0 <= yy < h and 0 <= zz < w:
                                yield b, ch, (ch * kh + i) * kw + j, y * ow + z, yy, zz


def _columns_shape(x_shape, kernel_size, stride, padding, dilation):
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = kernel_size, stride, padding, dilation
    return n, c * kh * kw, out_size(h, kh, sh, pt, pb, dh) * out_size(w, kw, sw, pl, pr, dw)


def im2col(x, kernel_size, stride, padding, dilation):
    """(N, C, H, W) -> (N, C*KH*KW, OH*OW), zero padding; padding = (top, bottom, left, right)."""
    x = np.asarray(x, dtype=np.float64)
    cols = np.zeros(_columns_shape(x.shape, kernel_size, stride, padding, dilation))
    for b, ch, row, l, yy, zz in _window_taps(x.shape, kernel_size, stride, padding, dilation):
        cols[b, row, l] = x[b, ch, yy, zz]
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """Adjoint of :func:`im2col`: (N, C*KH*KW, OH*OW) -> (N, C, H, W), summing overlaps."""
    cols = np.asarray(cols, dtype=np.float64)
    x = np.zeros(x_shape)
    for b, ch, row, l, yy, zz in _window_taps(x_shape, kernel_size, stride, padding, dilation):
        x[b, ch, yy, zz] += cols[b, row, l]
    return x
