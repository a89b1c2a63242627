"""Pooling on NumPy: one strided slice of the (padded) input per window tap, combined tap by tap.

Backward passes add each window's share back with one strided slice-add per tap (exact and
deterministic), or with ``np.bincount`` over the saved argmax indices.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _padded_extent(size, kernel, stride, pad, dilation, out) -> int:
    """Padded length the windows reach: at least size + pad, more for the ceil_mode overhang."""
    return max(size + pad, (out - 1) * stride + (kernel - 1) * dilation + 1)


def _pad(x, kernel_size, stride, padding, dilation, out_size, value) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, out_size
    h, w = x.shape[2:]
    bottom = _padded_extent(h, kh, sh, ph, dh, oh) - h - ph
    right = _padded_extent(w, kw, sw, pw, dw, ow) - w - pw
    if ph or pw or bottom > 0 or right > 0:
        x = np.pad(x, ((0, 0), (0, 0), (ph, max(bottom, 0)), (pw, max(right, 0))), constant_values=value)
    return x


def _windows(xp, kernel_size, stride, dilation, out_size) -> np.ndarray:
    """Read-only (N, C, KH, KW, OH, OW) view of the windows of an already padded array."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_size
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(xp, shape=(*xp.shape[:2], kh, kw, oh, ow),
                      strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw), writeable=False)


def _window_sum(xp, kernel_size, stride, dilation, out_size) -> np.ndarray:
    """Sum over each window of an already padded array: one strided slice-add per tap for small
    windows (fast, contiguous output), a reduction of the window view for large ones."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_size
    if kh * kw > 16:
        return _windows(xp, kernel_size, stride, dilation, out_size).sum(axis=(2, 3))
    acc = np.zeros((*xp.shape[:2], oh, ow), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            acc += xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
    return acc


def _scatter_taps(values, x_shape, kernel_size, stride, padding, dilation) -> np.ndarray:
    """Adjoint of a window sum: adds ``values`` (N, C, OH, OW) at every tap position of its window."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = values.shape[-2:]
    hp = _padded_extent(h, kh, sh, ph, dh, oh)
    wp = _padded_extent(w, kw, sw, pw, dw, ow)
    out = np.zeros((n, c, hp, wp), dtype=values.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw] += values
    return np.ascontiguousarray(out[:, :, ph:ph + h, pw:pw + w])


def _gather_by_index(dy, indices, x_shape) -> np.ndarray:
    """dx[plane, indices[plane, o]] += dy[plane, o] (the backward of max and adaptive max pooling)."""
    n, c, h, w = x_shape
    planes = n * c
    indices = indices.reshape(planes, -1)
    # A window with no input element (possible with dilation) has an index outside its plane.
    inside = ((indices >= 0) & (indices < h * w)).reshape(-1)
    flat = (indices + (np.arange(planes, dtype=np.int64) * (h * w))[:, None]).reshape(-1)
    weights = dy.reshape(-1).astype(np.float64)
    if not inside.all():
        flat, weights = flat[inside], weights[inside]
    dx = np.bincount(flat, weights=weights, minlength=planes * h * w)
    return dx[:planes * h * w].astype(dy.dtype).reshape(x_shape)


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _avg_divisors(x_shape, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
    """(OH, OW) divisors by PyTorch's rule."""
    if divisor_override:
        return np.full(out_size, float(divisor_override))
    counts = []
    for size, k, s, p, o in zip(x_shape[2:], kernel_size, stride, padding, out_size):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return np.outer(counts[0], counts[1]).astype(np.float64)


class PoolOps:
    def max_pool2d(self, x, kernel_size, stride, padding, dilation, out_size, with_indices=True,
                   index_dtype=np.int64):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, out_size
        w = x.shape[3]
        xp = _pad(x, kernel_size, stride, padding, dilation, out_size, -np.inf)

        def tap(t):
            i, j = divmod(t, kw)
            return xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]

        y = np.array(tap(0))
        for t in range(1, kh * kw):
            np.maximum(y, tap(t), out=y)  # propagates NaN, as PyTorch does
        if not with_indices:
            return y, None
        # The first tap in row-major order that holds the maximum (PyTorch's and the kernel's
        # choice); for a window holding NaN, its last NaN. Tap t of window (oy, ox) is at flat
        # index base[oy, ox] + offset(t).
        base = (np.arange(oh)[:, None] * sh - ph) * w + (np.arange(ow)[None, :] * sw - pw)

        def flat(t):
            i, j = divmod(t, kw)
            return base + (i * dh * w + j * dw)

        indices = np.empty(y.shape, dtype=np.int64)
        indices[...] = flat(0)
        for t in range(kh * kw - 1, 0, -1):
            np.copyto(indices, flat(t), where=tap(t) == y)
        nan = np.isnan(y)
        if nan.any():
            for t in range(kh * kw):
                np.copyto(indices, flat(t), where=nan & np.isnan(tap(t)))
        # A window whose maximum is -inf may have kept a padding tap: PyTorch reports its first
        # tap moved into the plane by whole dilation steps instead.
        empty = y == -np.inf
        if empty.any():
            first_row = np.arange(oh)[:, None] * sh - ph
            first_row = first_row + dh * np.maximum(0, -(first_row // dh))
            first_col = np.arange(ow)[None, :] * sw - pw
            first_col = first_col + dw * np.maximum(0, -(first_col // dw))
            np.copyto(indices, first_row * w + first_col, where=empty)
        return y, indices.astype(index_dtype, copy=False)

    def max_pool2d_backward(self, dy, indices, x_shape, kernel_size, stride, padding, dilation):
        # A window without input elements (dilation over padding) passes nothing on, as in the
        # kernel's gather; PyTorch's index for it may name an element outside that window.
        inside = [((np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d >= 0)
                   & (np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d < size)).any(axis=1)
                  for size, k, s, p, d, o in zip(x_shape[2:], kernel_size, stride, padding, dilation, dy.shape[2:])]
        live = np.outer(inside[0], inside[1])
        if not live.all():
            dy = dy * live
        return _gather_by_index(dy, indices, x_shape)

    def avg_pool2d(self, x, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
        ones = (1, 1)
        total = _window_sum(_pad(x, kernel_size, stride, padding, ones, out_size, 0), kernel_size, stride, ones,
                            out_size)
        div = _avg_divisors(x.shape, kernel_size, stride, padding, out_size, count_include_pad, divisor_override)
        total *= (1.0 / div).astype(x.dtype)
        return total

    def avg_pool2d_backward(self, dy, x_shape, kernel_size, stride, padding, count_include_pad, divisor_override):
        div = _avg_divisors(x_shape, kernel_size, stride, padding, dy.shape[2:], count_include_pad, divisor_override)
        return _scatter_taps((dy / div).astype(dy.dtype), x_shape, kernel_size, stride, padding, (1, 1))

    def adaptive_avg_pool2d(self, x, out_size):
        n, c, h, w = x.shape
        oh, ow = out_size
        if h % oh == 0 and w % ow == 0:
            return x.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5))
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
        for a, (y0, y1) in enumerate(_bins(h, oh)):
            for b, (x0, x1) in enumerate(_bins(w, ow)):
                y[:, :, a, b] = x[:, :, y0:y1, x0:x1].mean(axis=(2, 3))
        return y

    def adaptive_avg_pool2d_backward(self, dy, x_shape):
        n, c, h, w = x_shape
        oh, ow = dy.shape[2:]
        dx = np.zeros(x_shape, dtype=dy.dtype)
        for a, (y0, y1) in enumerate(_bins(h, oh)):
            for b, (x0, x1) in enumerate(_bins(w, ow)):
                dx[:, :, y0:y1, x0:x1] += (dy[:, :, a, b] / ((y1 - y0) * (x1 - x0)))[:, :, None, None]
        return dx

    def adaptive_max_pool2d(self, x, out_size, index_dtype=np.int64):
        n, c, h, w = x.shape
        oh, ow = out_size
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
        indices = np.empty((n, c, oh, ow), dtype=np.int64)
        for a, (y0, y1) in enumerate(_bins(h, oh)):
            for b, (x0, x1) in enumerate(_bins(w, ow)):
                region = x[:, :, y0:y1, x0:x1].reshape(n, c, -1)
                nan = np.isnan(region)
                best = region.argmax(axis=2)
                if nan.any():
                    last_nan = region.shape[2] - 1 - nan[:, :, ::-1].argmax(axis=2)
                    best = np.where(nan.any(axis=2), last_nan, best)
                y[:, :, a, b] = np.take_along_axis(region, best[:, :, None], axis=2)[:, :, 0]
                i, j = np.divmod(best, x1 - x0)
                indices[:, :, a, b] = (y0 + i) * w + x0 + j
        return y, indices.astype(index_dtype, copy=False)

    def adaptive_max_pool2d_backward(self, dy, indices, x_shape):
        return _gather_by_index(dy, indices, x_shape)

    # ---- GeM --------------------------------------------------------------------------------------
    @staticmethod
    def _gem_window_sum(a, kernel_size, stride, out_size):
        if tuple(kernel_size) == a.shape[2:]:
            return a.sum(axis=(2, 3), keepdims=True)
        return _window_sum(a, kernel_size, stride, (1, 1), out_size)

    def gem(self, x, p, eps, kernel_size, stride, out_size):
        p = x.dtype.type(p[0])
        cp = np.maximum(x, x.dtype.type(eps)) ** p
        m = self._gem_window_sum(cp, kernel_size, stride, out_size) / (kernel_size[0] * kernel_size[1])
        return (m ** (1 / p)).astype(x.dtype)

    def gem_backward(self, dy, x, p, eps, kernel_size, stride, need_dx, need_dp):
        p = x.dtype.type(p[0])
        k = kernel_size[0] * kernel_size[1]
        c = np.maximum(x, x.dtype.type(eps))
        cp = c ** p
        out_size = dy.shape[2:]
        m = self._gem_window_sum(cp, kernel_size, stride, out_size) / k
        g = dy * m ** (1 / p)
        dx = dp = None
        if need_dp:
            log_sum = self._gem_window_sum(cp * np.log(c), kernel_size, stride, out_size)
            dp = np.asarray([np.sum(g * (log_sum / (k * p * m) - np.log(m) / (p * p)))], dtype=x.dtype)
        if need_dx:
            coef = (g / (m * k)).astype(x.dtype)
            dx = _scatter_taps(coef, x.shape, kernel_size, stride, (0, 0), (1, 1))
            dx *= np.where(x >= eps, c ** (p - 1), 0).astype(x.dtype)
        return dx, dp
