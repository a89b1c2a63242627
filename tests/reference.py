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


# ---- pooling and batch normalization (kernels/pool.cu, kernels/batchnorm.cu) ----------------------

def pool_out_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output length (ceil_mode drops a last window starting in the right padding)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode):
    """(y, indices): the first maximum of each window in row-major tap order; padding never wins."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    oh = pool_out_size(h, kh, sh, ph, dh, ceil_mode)
    ow = pool_out_size(w, kw, sw, pw, dw, ceil_mode)
    y = np.full((n, c, oh, ow), -np.inf)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    # PyTorch's index for a window with no input element: its first tap moved into
                    # the plane by whole dilation steps (it may still lie outside the plane).
                    fy, fx = i * sh - ph, j * sw - pw
                    while fy < 0:
                        fy += dh
                    while fx < 0:
                        fx += dw
                    idx[b, ch, i, j] = fy * w + fx
                    for a in range(kh):
                        for e in range(kw):
                            yy, xx = i * sh - ph + a * dh, j * sw - pw + e * dw
                            if 0 <= yy < h and 0 <= xx < w and x[b, ch, yy, xx] > y[b, ch, i, j]:
                                y[b, ch, i, j] = x[b, ch, yy, xx]
                                idx[b, ch, i, j] = yy * w + xx
    return y, idx


def max_pool2d_backward(dy, indices, x_shape, kernel_size, stride, padding, dilation):
    """Each dy goes to the input element of its window whose flat index the forward chose (a window
    without input elements passes nothing on)."""
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.zeros(x_shape)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    for b in range(n):
        for ch in range(c):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    for a in range(kh):
                        for e in range(kw):
                            yy, xx = i * sh - ph + a * dh, j * sw - pw + e * dw
                            if 0 <= yy < h and 0 <= xx < w and indices[b, ch, i, j] == yy * w + xx:
                                dx[b, ch, yy, xx] += dy[b, ch, i, j]
    return dx


def index_backward(dy, indices, x_shape):
    """dx[plane, index] += dy for each output (adaptive max pooling, whose bins are never empty)."""
    dx = np.zeros(x_shape)
    n, c, h, w = x_shape
    for b in range(n):
        for ch in range(c):
            for o, k in zip(np.asarray(dy[b, ch], dtype=np.float64).ravel(), indices[b, ch].ravel()):
                dx[b, ch, k // w, k % w] += o
    return dx


def _avg_windows(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Yields (i, j, rows, cols, divisor) for each average-pooling window, by PyTorch's rule."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh = pool_out_size(h, kh, sh, ph, 1, ceil_mode)
    ow = pool_out_size(w, kw, sw, pw, 1, ceil_mode)
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * sh - ph, j * sw - pw
            y1, x1 = min(y0 + kh, h + ph), min(x0 + kw, w + pw)
            size = (y1 - y0) * (x1 - x0)
            rows = range(max(y0, 0), min(y1, h))
            cols = range(max(x0, 0), min(x1, w))
            divisor = divisor_override or (size if count_include_pad else len(rows) * len(cols))
            yield i, j, rows, cols, divisor


def avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x = np.asarray(x, dtype=np.float64)
    windows = list(_avg_windows(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                divisor_override))
    oh, ow = windows[-1][0] + 1, windows[-1][1] + 1
    y = np.zeros((*x.shape[:2], oh, ow))
    for i, j, rows, cols, divisor in windows:
        for r in rows:
            for s in cols:
                y[:, :, i, j] += x[:, :, r, s]
        y[:, :, i, j] /= divisor
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.zeros(x_shape)
    for i, j, rows, cols, divisor in _avg_windows(x_shape, kernel_size, stride, padding, ceil_mode,
                                                  count_include_pad, divisor_override):
        for r in rows:
            for s in cols:
                dx[:, :, r, s] += dy[:, :, i, j] / divisor
    return dx


def adaptive_bins(size, out):
    """PyTorch's adaptive bins: floor(i*size/out) .. ceil((i+1)*size/out)."""
    return [(int(np.floor(i * size / out)), int(np.ceil((i + 1) * size / out))) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    x = np.asarray(x, dtype=np.float64)
    oh, ow = output_size
    y = np.zeros((*x.shape[:2], oh, ow))
    for i, (y0, y1) in enumerate(adaptive_bins(x.shape[2], oh)):
        for j, (x0, x1) in enumerate(adaptive_bins(x.shape[3], ow)):
            y[:, :, i, j] = x[:, :, y0:y1, x0:x1].sum(axis=(2, 3)) / ((y1 - y0) * (x1 - x0))
    return y


def adaptive_avg_pool2d_backward(dy, x_shape):
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.zeros(x_shape)
    oh, ow = dy.shape[2:]
    for i, (y0, y1) in enumerate(adaptive_bins(x_shape[2], oh)):
        for j, (x0, x1) in enumerate(adaptive_bins(x_shape[3], ow)):
            dx[:, :, y0:y1, x0:x1] += dy[:, :, i, j][:, :, None, None] / ((y1 - y0) * (x1 - x0))
    return dx


def adaptive_max_pool2d(x, output_size):
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    oh, ow = output_size
    y = np.full((n, c, oh, ow), -np.inf)
    idx = np.full((n, c, oh, ow), -1, dtype=np.int64)
    for i, (y0, y1) in enumerate(adaptive_bins(h, oh)):
        for j, (x0, x1) in enumerate(adaptive_bins(w, ow)):
            for b in range(n):
                for ch in range(c):
                    for r in range(y0, y1):
                        for s in range(x0, x1):
                            if x[b, ch, r, s] > y[b, ch, i, j]:
                                y[b, ch, i, j] = x[b, ch, r, s]
                                idx[b, ch, i, j] = r * w + s
    return y, idx


def gem(x, p, eps, kernel_size, stride):
    """mean over each window (no padding) of max(x, eps)^p, to the power 1/p."""
    x = np.asarray(x, dtype=np.float64)
    (kh, kw), (sh, sw) = kernel_size, stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.zeros((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = np.maximum(x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], eps)
            y[:, :, i, j] = np.mean(window ** p, axis=(2, 3)) ** (1.0 / p)
    return y


def batch_norm_train(x, weight, bias, eps):
    """(y, batch mean, biased var, unbiased var) in float64, two-pass."""
    x = np.asarray(x, dtype=np.float64)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=(0, 2, 3))
    var = ((x - mean[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    y = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    if weight is not None:
        y = y * np.asarray(weight, dtype=np.float64)[None, :, None, None]
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y, mean, var, var * count / (count - 1)


def batch_norm_eval(x, running_mean, running_var, weight, bias, eps):
    x = np.asarray(x, dtype=np.float64)
    shape = (1, -1, 1, 1)
    y = (x - np.reshape(running_mean, shape)) / np.sqrt(np.reshape(running_var, shape).astype(np.float64) + eps)
    if weight is not None:
        y = y * np.reshape(weight, shape)
    if bias is not None:
        y = y + np.reshape(bias, shape)
    return y


def batch_norm_train_backward(dy, x, weight, eps):
    """(dx, dweight, dbias) of training-mode batch norm, from the textbook formula in float64."""
    dy, x = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=(0, 2, 3))[None, :, None, None]
    invstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=(0, 2, 3)) + eps)[None, :, None, None]
    xhat = (x - mean) * invstd
    g = np.ones(x.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
    dxhat = dy * g[None, :, None, None]
    dx = invstd / count * (count * dxhat - dxhat.sum(axis=(0, 2, 3), keepdims=True)
                           - xhat * (dxhat * xhat).sum(axis=(0, 2, 3), keepdims=True))
    return dx, (dy * xhat).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))


def gem_backward(dy, x, p, eps, kernel_size, stride):
    """(dx, dp) of :func:`gem` by the chain rule, window by window, in float64."""
    dy, x = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    (kh, kw), (sh, sw) = kernel_size, stride
    dx = np.zeros(x.shape)
    dp = 0.0
    for b in range(x.shape[0]):
        for ch in range(x.shape[1]):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    window = x[b, ch, rows, cols]
                    c = np.maximum(window, eps)
                    m = np.mean(c ** p)
                    y = m ** (1.0 / p)
                    dm_dx = p * c ** (p - 1) * (window >= eps) / c.size
                    dx[b, ch, rows, cols] += dy[b, ch, i, j] * y / (p * m) * dm_dx
                    dm_dp = np.mean(c ** p * np.log(c))
                    dp += dy[b, ch, i, j] * y * (-np.log(m) / p ** 2 + dm_dp / (p * m))
    return dx, np.array([dp])
