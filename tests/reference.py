"""Naive loop implementations in float64: obviously correct, for tiny sizes only.

Every op on every backend is compared with these. Padding is given per side as
(top, bottom, left, right) so asymmetric padding can be expressed.
"""

from __future__ import annotations

import itertools

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


# ---- activations, softmax, linear, layer_norm, losses (ops helper) --------------------------------------------

import math  # noqa: E402  (kept in this section so appended sections merge cleanly)

def relu(x):
    x = np.asarray(x, dtype=np.float64)
    return np.array([v if v > 0 else 0.0 for v in x.reshape(-1)]).reshape(x.shape)


def relu_backward(dy, x):
    dy, x = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    return np.array([g if v > 0 else 0.0 for g, v in zip(dy.reshape(-1), x.reshape(-1), strict=True)]).reshape(x.shape)


def leaky_relu(x, slope):
    x = np.asarray(x, dtype=np.float64)
    return np.array([v if v > 0 else slope * v for v in x.reshape(-1)]).reshape(x.shape)


def leaky_relu_backward(dy, x, slope):
    dy, x = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    return np.array([g if v > 0 else slope * g for g, v in zip(dy.reshape(-1), x.reshape(-1), strict=True)]).reshape(x.shape)


def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return np.array([1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))
                     for v in x.reshape(-1)]).reshape(x.shape)


def tanh(x):
    x = np.asarray(x, dtype=np.float64)
    return np.array([math.tanh(v) for v in x.reshape(-1)]).reshape(x.shape)


def _rowwise(x, dim, fn, *others):
    """Applies fn(row, *other_rows) -> row to every 1-D slice of x along dim."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), dim, -1)
    others = [np.moveaxis(np.asarray(o, dtype=np.float64), dim, -1) for o in others]
    out = np.zeros(x.shape)
    for index in np.ndindex(*x.shape[:-1]):
        out[index] = fn(list(x[index]), *[list(o[index]) for o in others])
    return np.moveaxis(out, -1, dim)


def _softmax_row(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = math.fsum(e)
    return [v / s for v in e]


def softmax(x, dim):
    return _rowwise(x, dim, _softmax_row)


def log_softmax(x, dim):
    def row_fn(row):
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
        return [v - lse for v in row]
    return _rowwise(x, dim, row_fn)


def softmax_backward(dy, x, dim):
    """Through the Jacobian: dx_j = sum_i dy_i * s_i * ([i == j] - s_j); x is the forward's INPUT."""
    def row_fn(row, g):
        s = _softmax_row(row)
        return [math.fsum(g[i] * s[i] * ((i == j) - s[j]) for i in range(len(s))) for j in range(len(s))]
    return _rowwise(x, dim, row_fn, dy)


def log_softmax_backward(dy, x, dim):
    """Through the Jacobian: dx_j = sum_i dy_i * ([i == j] - s_j); x is the forward's INPUT."""
    def row_fn(row, g):
        s = _softmax_row(row)
        return [math.fsum(g[i] * ((i == j) - s[j]) for i in range(len(s))) for j in range(len(s))]
    return _rowwise(x, dim, row_fn, dy)


def linear(x, weight, bias=None):
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    out_f, in_f = weight.shape
    rows = x.reshape(-1, in_f)
    y = np.zeros((rows.shape[0], out_f))
    for r in range(rows.shape[0]):
        for o in range(out_f):
            y[r, o] = math.fsum(rows[r, i] * weight[o, i] for i in range(in_f)) + (0.0 if bias is None else bias[o])
    return y.reshape(x.shape[:-1] + (out_f,))


def linear_backward(dy, x, weight):
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    out_f, in_f = weight.shape
    rows, g = x.reshape(-1, in_f), np.asarray(dy, dtype=np.float64).reshape(-1, out_f)
    dx, dw, db = np.zeros(rows.shape), np.zeros(weight.shape), np.zeros(out_f)
    for r in range(rows.shape[0]):
        for o in range(out_f):
            db[o] += g[r, o]
            for i in range(in_f):
                dx[r, i] += g[r, o] * weight[o, i]
                dw[o, i] += g[r, o] * rows[r, i]
    return dx.reshape(x.shape), dw, db


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, invstd) with mean/invstd one per normalized row (flat)."""
    x = np.asarray(x, dtype=np.float64)
    d = int(np.prod(normalized_shape))
    rows = x.reshape(-1, d)
    w = np.ones(d) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    b = np.zeros(d) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    y, means, invstds = np.zeros(rows.shape), np.zeros(rows.shape[0]), np.zeros(rows.shape[0])
    for r in range(rows.shape[0]):
        mean = math.fsum(rows[r]) / d
        var = math.fsum((v - mean) ** 2 for v in rows[r]) / d
        invstd = 1.0 / math.sqrt(var + eps)
        means[r], invstds[r] = mean, invstd
        for j in range(d):
            y[r, j] = (rows[r, j] - mean) * invstd * w[j] + b[j]
    return y.reshape(x.shape), means, invstds


def layer_norm_backward(dy, x, normalized_shape, weight=None, eps=1e-5):
    """Through the Jacobian d xhat_i / d x_j = invstd * ([i == j] - 1/D - xhat_i * xhat_j / D)."""
    x = np.asarray(x, dtype=np.float64)
    d = int(np.prod(normalized_shape))
    rows, g = x.reshape(-1, d), np.asarray(dy, dtype=np.float64).reshape(-1, d)
    w = np.ones(d) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    dx, dw, db = np.zeros(rows.shape), np.zeros(d), np.zeros(d)
    for r in range(rows.shape[0]):
        mean = math.fsum(rows[r]) / d
        invstd = 1.0 / math.sqrt(math.fsum((v - mean) ** 2 for v in rows[r]) / d + eps)
        xhat = [(v - mean) * invstd for v in rows[r]]
        for j in range(d):
            dw[j] += g[r, j] * xhat[j]
            db[j] += g[r, j]
            dx[r, j] = math.fsum(g[r, i] * w[i] * invstd * ((i == j) - 1.0 / d - xhat[i] * xhat[j] / d)
                                 for i in range(d))
    return dx.reshape(x.shape), dw.reshape(normalized_shape), db.reshape(normalized_shape)


def _ce_terms(logits, target, weight, ignore_index, label_smoothing):
    """Per-target (loss, target weight, class-score row index list) with the class dimension 1."""
    logits = np.asarray(logits, dtype=np.float64)
    target = np.asarray(target)
    if logits.ndim == 1:
        logits, target = logits[None], target.reshape(1)
    c = logits.shape[1]
    w = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    moved = np.moveaxis(logits, 1, -1).reshape(-1, c)
    flat = target.reshape(-1)
    losses, weights = [], []
    for row, t in zip(moved, flat, strict=True):
        if t == ignore_index:
            losses.append(0.0)
            weights.append(0.0)
            continue
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
        logp = [v - lse for v in row]
        nll = -w[t] * logp[t]
        smooth = -math.fsum(w[k] * logp[k] for k in range(c))
        losses.append((1 - label_smoothing) * nll + label_smoothing / c * smooth)
        weights.append(w[t])
    return np.array(losses), np.array(weights), moved, flat, w


def cross_entropy(logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    losses, weights, _, _, _ = _ce_terms(logits, target, weight, ignore_index, label_smoothing)
    if reduction == "none":
        return losses.reshape(np.asarray(target).shape)
    total = math.fsum(losses)
    if reduction == "sum":
        return np.array(total)
    return np.array(total / math.fsum(weights)) if math.fsum(weights) else np.array(np.nan)


def cross_entropy_backward(dloss, logits, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """dL/dlogit_c = sum_k dL/dlogp_k * ([k == c] - p_c) per target, from the per-target loss."""
    logits = np.asarray(logits, dtype=np.float64)
    _, weights, moved, flat, w = _ce_terms(logits, target, weight, ignore_index, label_smoothing)
    c = moved.shape[1]
    dl = np.asarray(dloss, dtype=np.float64).reshape(-1)
    out = np.zeros(moved.shape)
    for r, (row, t) in enumerate(zip(moved, flat, strict=True)):
        if t == ignore_index:
            continue
        scale = dl[r] if reduction == "none" else dl[0] / (math.fsum(weights) if reduction == "mean" else 1.0)
        p = _softmax_row(list(row))
        dlogp = [-scale * ((1 - label_smoothing) * w[t] * (k == t) + label_smoothing / c * w[k]) for k in range(c)]
        for j in range(c):
            out[r, j] = math.fsum(dlogp[k] * ((k == j) - p[j]) for k in range(c))
    if logits.ndim == 1:
        return out.reshape(logits.shape)
    shape = (logits.shape[0],) + logits.shape[2:] + (c,)
    return np.moveaxis(out.reshape(shape), -1, 1)


def mse_loss(a, b, reduction="mean"):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sq = np.array([(u - v) ** 2 for u, v in zip(a.reshape(-1), b.reshape(-1), strict=True)]).reshape(a.shape)
    if reduction == "none":
        return sq
    total = math.fsum(sq.reshape(-1))
    return np.array(total if reduction == "sum" else total / a.size)


def mse_loss_backward(dloss, a, b, reduction="mean"):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = np.asarray(dloss, dtype=np.float64)
    scale = d if reduction == "none" else d.reshape(()) / (a.size if reduction == "mean" else 1)
    return 2 * (a - b) * scale


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
            for o, k in zip(np.asarray(dy[b, ch], dtype=np.float64).ravel(), indices[b, ch].ravel(), strict=True):
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


# ---- NLL, binary cross entropy, smooth L1 (functional/loss.py) --------------------------------------------------

def _reduce(losses, reduction, denominator=None):
    if reduction == "none":
        return losses
    total = math.fsum(losses.reshape(-1))
    if reduction == "sum":
        return np.array(total)
    return np.array(total / (losses.size if denominator is None else denominator))


def nll_loss(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """-weight[t] * logp[t] per target, one loop over (sample, position); logp (N, C, d...) or (C,)."""
    logp = np.asarray(logp, dtype=np.float64)
    moved = logp.reshape(1, -1) if logp.ndim == 1 else np.moveaxis(logp, 1, -1).reshape(-1, logp.shape[1])
    flat = np.asarray(target).reshape(-1)
    losses, weights = np.zeros(flat.size), np.zeros(flat.size)
    for k, t in enumerate(flat):
        if t == ignore_index:
            continue
        w = 1.0 if weight is None else float(weight[t])
        losses[k], weights[k] = -w * moved[k, t], w
    out = _reduce(losses.reshape(np.shape(target)), reduction, math.fsum(weights))
    return out


def binary_cross_entropy(x, t, weight=None, reduction="mean"):
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    w = np.broadcast_to(1.0 if weight is None else np.asarray(weight, dtype=np.float64), x.shape)
    losses = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        log_p = max(math.log(x[i]), -100.0) if x[i] > 0 else -100.0
        log_q = max(math.log(1 - x[i]), -100.0) if x[i] < 1 else -100.0
        losses[i] = -w[i] * (t[i] * log_p + (1 - t[i]) * log_q)
    return _reduce(losses, reduction)


def binary_cross_entropy_with_logits(x, t, weight=None, reduction="mean", pos_weight=None):
    """-w * (pw * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x))), textbook form in float64."""
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    w = np.broadcast_to(1.0 if weight is None else np.asarray(weight, dtype=np.float64), x.shape)
    pw = np.broadcast_to(1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64), x.shape)
    losses = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        sig = 1.0 / (1.0 + math.exp(-x[i]))
        losses[i] = -w[i] * (pw[i] * t[i] * math.log(sig) + (1 - t[i]) * math.log(1 - sig))
    return _reduce(losses, reduction)


def smooth_l1_loss(x, t, reduction="mean", beta=1.0):
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    losses = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        d = abs(x[i] - t[i])
        losses[i] = 0.5 * d * d / beta if d < beta else d - 0.5 * beta
    return _reduce(losses, reduction)


# ---- interpolate (functional/interpolate.py) --------------------------------------------------------------------

def _source_taps(o, in_size, out_size, scale_factor, mode, align_corners):
    """[(input index, weight)] that output index ``o`` reads along one axis (PyTorch's formulas,
    including its shortcuts: an axis of unchanged size is copied; nearest doubling reads o // 2)."""
    if out_size == in_size:
        return [(o, 1.0)]
    if mode == "nearest" and out_size == 2 * in_size:
        return [(o // 2, 1.0)]
    if mode == "nearest":
        s = np.float32(1.0 / scale_factor) if scale_factor else np.float32(in_size) / np.float32(out_size)
        return [(min(int(np.floor(np.float32(o) * s)), in_size - 1), 1.0)]
    if align_corners:
        src = o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    else:
        s = 1.0 / scale_factor if scale_factor else in_size / out_size
        src = max((o + 0.5) * s - 0.5, 0.0)
    i0 = int(src)
    i1 = i0 + 1 if i0 < in_size - 1 else i0
    lam = src - i0
    return [(i0, 1.0 - lam), (i1, lam)]


def interpolate(x, out_size, scale_factors, mode, align_corners):
    """Output pixel by output pixel: the weighted sum of the input pixels it reads."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    oh, ow = out_size
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for yy, wy in _source_taps(i, h, oh, scale_factors[0], mode, align_corners):
                for xx, wx in _source_taps(j, w, ow, scale_factors[1], mode, align_corners):
                    y[:, :, i, j] += wy * wx * x[:, :, yy, xx]
    return y


def interpolate_backward(dy, x_shape, scale_factors, mode, align_corners):
    """Each output gradient scattered back onto the input pixels it read."""
    dy = np.asarray(dy, dtype=np.float64)
    n, c, h, w = x_shape
    oh, ow = dy.shape[2:]
    dx = np.zeros(x_shape)
    for i in range(oh):
        for j in range(ow):
            for yy, wy in _source_taps(i, h, oh, scale_factors[0], mode, align_corners):
                for xx, wx in _source_taps(j, w, ow, scale_factors[1], mode, align_corners):
                    dx[:, :, yy, xx] += wy * wx * dy[:, :, i, j]
    return dx


# ---- conv_transpose2d, group_norm (functional/conv_transpose.py, functional/group_norm.py) ----------------------

def conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation):
    """Each input pixel scatters weight * value onto the output (the definition of a transposed
    convolution); the full output is then cropped by ``padding`` on each border."""
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    n, c_in, h, w = x.shape
    _, cog, kh, kw = weight.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    cig = c_in // groups
    y = np.zeros((n, cog * groups, oh, ow))
    for b in range(n):
        for ci in range(c_in):
            grp = ci // cig
            for yy in range(h):
                for xx in range(w):
                    for co in range(cog):
                        for i in range(kh):
                            for j in range(kw):
                                oy, ox = yy * sh - ph + i * dh, xx * sw - pw + j * dw
                                if 0 <= oy < oh and 0 <= ox < ow:
                                    y[b, grp * cog + co, oy, ox] += x[b, ci, yy, xx] * weight[ci, co, i, j]
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y


def conv_transpose2d_backward(dy, x, weight, stride, padding, groups, dilation):
    """(dx, dweight, dbias): every tap of the forward's scatter, differentiated."""
    dy = np.asarray(dy, dtype=np.float64)
    x, weight = np.asarray(x, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    n, c_in, h, w = x.shape
    _, cog, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = dy.shape[2:]
    cig = c_in // groups
    dx, dweight = np.zeros_like(x), np.zeros_like(weight)
    for b in range(n):
        for ci in range(c_in):
            grp = ci // cig
            for yy in range(h):
                for xx in range(w):
                    for co in range(cog):
                        for i in range(kh):
                            for j in range(kw):
                                oy, ox = yy * sh - ph + i * dh, xx * sw - pw + j * dw
                                if 0 <= oy < oh and 0 <= ox < ow:
                                    g = dy[b, grp * cog + co, oy, ox]
                                    dx[b, ci, yy, xx] += g * weight[ci, co, i, j]
                                    dweight[ci, co, i, j] += g * x[b, ci, yy, xx]
    return dx, dweight, dy.sum(axis=(0, 2, 3))


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group by group: mean and biased variance with math.fsum, then the affine map per channel."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    per = c // num_groups
    y = np.zeros(x.shape)
    for b in range(n):
        for g in range(num_groups):
            values = x[b, g * per:(g + 1) * per]
            flat = values.reshape(-1)
            mean = math.fsum(flat) / flat.size
            var = math.fsum((v - mean) ** 2 for v in flat) / flat.size
            y[b, g * per:(g + 1) * per] = (values - mean) / math.sqrt(var + eps)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * np.asarray(weight, dtype=np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64).reshape(shape)
    return y


def group_norm_backward(dy, x, num_groups, weight=None, eps=1e-5):
    """(dx, dweight, dbias) from the textbook normalization gradient, group by group."""
    dy, x = np.asarray(dy, dtype=np.float64), np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    per = c // num_groups
    shape = (1, c) + (1,) * (x.ndim - 2)
    gamma = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    xhat = group_norm(x, num_groups, eps=eps)
    dxhat = dy * gamma.reshape(shape)
    dx = np.zeros(x.shape)
    for b in range(n):
        for g in range(num_groups):
            sl = (b, slice(g * per, (g + 1) * per))
            values = x[sl].reshape(-1)
            m = values.size
            invstd = 1.0 / math.sqrt(np.var(values) + eps)
            d, xh = dxhat[sl].reshape(-1), xhat[sl].reshape(-1)
            dx[sl] = (invstd / m * (m * d - d.sum() - xh * (d * xh).sum())).reshape(x[sl].shape)
    axes = (0,) + tuple(range(2, x.ndim))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def _pad_source(i: int, size: int, mode: str) -> int | None:
    """The input index that output index ``i`` (in input coordinates, may lie outside [0, size))
    copies under ``mode``, or None for the constant fill."""
    if 0 <= i < size:
        return i
    if mode == "constant":
        return None
    if mode == "reflect":
        return -i if i < 0 else 2 * (size - 1) - i
    if mode == "replicate":
        return min(max(i, 0), size - 1)
    return i % size  # circular


def _pad_index_map(shape, pad, mode):
    """(output shape, {output index: input index or None}) of PyTorch's F.pad, element by element."""
    pairs = list(zip(pad[0::2], pad[1::2]))
    befores = [0] * len(shape)
    out_shape = list(shape)
    for k, (before, after) in enumerate(pairs):
        axis = len(shape) - 1 - k
        befores[axis] = before
        out_shape[axis] = shape[axis] + before + after
    mapping = {}
    for out_index in itertools.product(*(range(s) for s in out_shape)):
        sources = [_pad_source(o - b, s, mode) for o, b, s in zip(out_index, befores, shape)]
        mapping[out_index] = None if any(v is None for v in sources) else tuple(sources)
    return tuple(out_shape), mapping


def pad(x, pad, mode="constant", value=0.0):
    """PyTorch's F.pad: each output element copies the input element its mode maps it to."""
    x = np.asarray(x, dtype=np.float64)
    out_shape, mapping = _pad_index_map(x.shape, pad, mode)
    y = np.empty(out_shape)
    for out_index, source in mapping.items():
        y[out_index] = value if source is None else x[source]
    return y


def pad_backward(dy, input_shape, pad, mode="constant"):
    """dx of :func:`pad`: each output's gradient added to the input element it copied."""
    dy = np.asarray(dy, dtype=np.float64)
    _, mapping = _pad_index_map(tuple(input_shape), pad, mode)
    dx = np.zeros(input_shape)
    for out_index, source in mapping.items():
        if source is not None:
            dx[source] += dy[out_index]
    return dx
