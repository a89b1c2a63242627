"""Pooling on NumPy: one strided slice of the input per window tap, combined tap by tap.

Padding is never materialized: each tap reads only the outputs whose tap position falls inside
the input (a 1x1 input with padding 100000 costs one tap, not a 200001^2 padded copy). Backward
passes add each window's share back with one strided slice-add per tap (exact and deterministic),
or with ``np.bincount`` over the saved argmax indices.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..windows import is_pairwise


def _tap_spans(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> list[tuple]:
    """Along one axis, every tap that reads inside the input for some output, in tap order, as
    (first output o0, output count, input position of o0); outputs o0 .. o0+count-1 read
    positions start, start + stride, ... Taps over padding only are left out."""
    spans = []
    # Taps whose position i*dilation - pad + o*stride can be in [0, size) for some 0 <= o < out.
    first = max(0, -(-(pad - (out - 1) * stride) // dilation))
    last = min(kernel - 1, (pad + size - 1) // dilation)
    for i in range(first, last + 1):
        offset = i * dilation - pad  # input position of this tap for output 0
        o0 = max(0, -(offset // stride)) if offset < 0 else 0
        o1 = min(out - 1, (size - 1 - offset) // stride)
        if o0 <= o1:
            spans.append((o0, o1 - o0 + 1, offset + o0 * stride))
    return spans


def _tap_slices(kernel_size, stride, padding, dilation, x_hw, out_size):
    """(output slice, input slice) of each tap that reads inside the input, in row-major tap order."""
    (sh, sw) = stride
    rows = _tap_spans(x_hw[0], kernel_size[0], sh, padding[0], dilation[0], out_size[0])
    cols = _tap_spans(x_hw[1], kernel_size[1], sw, padding[1], dilation[1], out_size[1])
    for oy0, ny, r0 in rows:
        for ox0, nx, c0 in cols:
            yield ((slice(None), slice(None), slice(oy0, oy0 + ny), slice(ox0, ox0 + nx)),
                   (slice(None), slice(None), slice(r0, r0 + (ny - 1) * sh + 1, sh),
                    slice(c0, c0 + (nx - 1) * sw + 1, sw)))


def _needs_padding(x_hw, kernel_size, stride, padding, dilation, out_size) -> bool:
    """Whether some window reaches past the input (padding, or the ceil_mode overhang)."""
    return any(p > 0 or (o - 1) * s + (k - 1) * d + 1 > size
               for size, k, s, p, d, o in zip(x_hw, kernel_size, stride, padding, dilation, out_size))


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
    """Adjoint of a window sum: adds ``values`` (N, C, OH, OW) at every tap position of its window
    that lies inside the input."""
    out = np.zeros(x_shape, dtype=values.dtype)
    for out_slice, in_slice in _tap_slices(kernel_size, stride, padding, dilation, x_shape[2:],
                                                 values.shape[-2:]):
        out[in_slice] += values[out_slice]
    return out


def _gather_by_index(dy, indices, x_shape, disjoint: bool = False) -> np.ndarray:
    """dx[plane, indices[plane, o]] += dy[plane, o] (the backward of max and adaptive max pooling).

    ``disjoint``: the windows do not overlap, so no two valid indices of a plane are equal and a
    plain scatter is the sum (no float64 bincount)."""
    n, c, h, w = x_shape
    planes = n * c
    indices = indices.reshape(planes, -1)
    # A window with no input element (possible with dilation) has an index outside its plane.
    inside = ((indices >= 0) & (indices < h * w)).reshape(-1)
    flat = (indices + (np.arange(planes, dtype=np.int64) * (h * w))[:, None]).reshape(-1)
    weights = dy.reshape(-1)
    if not inside.all():
        flat, weights = flat[inside], weights[inside]
    if disjoint:
        dx = np.zeros(planes * h * w, dtype=dy.dtype)
        dx[flat] = weights
        return dx.reshape(x_shape)
    dx = np.bincount(flat, weights=weights.astype(np.float64), minlength=planes * h * w)
    return dx[:planes * h * w].astype(dy.dtype).reshape(x_shape)


def _indices_in_windows(indices, x_shape, kernel_size, stride, padding, dilation, out_size) -> np.ndarray:
    """Whether each index names a tap of its window (row y0 + i*dh, column x0 + j*dw) in the plane."""
    h, w = x_shape[2:]
    inside = (indices >= 0) & (indices < h * w)
    # 32-bit arithmetic: functional checked that the padded plane's positions fit in int32, so
    # position - window start does too; viewed as unsigned, one comparison rejects negative ones.
    row, col = np.divmod(np.where(inside, indices, 0).astype(np.int32), np.int32(w))
    valid = inside
    for position, k, s, p, d, o, shape in ((row, kernel_size[0], stride[0], padding[0], dilation[0], out_size[0],
                                            (-1, 1)),
                                           (col, kernel_size[1], stride[1], padding[1], dilation[1], out_size[1],
                                            (1, -1))):
        start = (np.arange(o, dtype=np.int64) * s - p).astype(np.int32).reshape(shape)
        offset = (position - start).view(np.uint32)
        valid &= offset <= np.uint32((k - 1) * d)
        if d > 1:
            valid &= offset % np.uint32(d) == 0
    return valid


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _scale_overhang(values, x_hw, kernel_size, stride, out_size) -> None:
    """Multiplies, in place, the last output row and column whose ceil_mode window overhangs the
    input (padding 0, dilation 1) by kernel extent / its elements inside, per axis: each window
    gets K / (its element count)."""
    for axis, (size, k, s, o) in enumerate(zip(x_hw, kernel_size, stride, out_size)):
        inside = min((o - 1) * s + k, size) - (o - 1) * s
        if inside < k:
            index = (Ellipsis, o - 1, slice(None)) if axis == 0 else (Ellipsis, o - 1)
            values[index] *= values.dtype.type(k / inside)


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


def _max_pool_2x2(x, oh, ow):
    """(y, int64 indices) of 2x2/2 max pooling in two pairwise steps, columns then rows: each keeps
    the second element only where it is strictly greater, which is the first maximum in row-major
    order (NaN windows are fixed by the caller)."""
    w = x.shape[3]
    left, right = x[:, :, :2 * oh, 0:2 * ow:2], x[:, :, :2 * oh, 1:2 * ow:2]
    took_right = right > left
    rows = np.maximum(left, right)
    top, bottom = rows[:, :, 0::2], rows[:, :, 1::2]
    took_bottom = bottom > top
    y = np.maximum(top, bottom)
    column = np.where(took_bottom, took_right[:, :, 1::2], took_right[:, :, 0::2])
    indices = took_bottom * w
    indices += column
    indices += np.arange(oh)[:, None] * (2 * w) + np.arange(ow)[None, :] * 2
    return y, indices


def _last_nan(y, indices, x, taps, stride, w):
    """``indices`` with each window that holds NaN pointing at its last NaN (the kernel's choice)."""
    nan = np.isnan(y)
    if nan.any():
        sh, sw = stride
        for out_slice, in_slice in taps:
            rows = np.arange(in_slice[2].start, in_slice[2].stop, sh)
            cols = np.arange(in_slice[3].start, in_slice[3].stop, sw)
            np.copyto(indices[out_slice], rows[:, None] * w + cols[None, :],
                      where=nan[out_slice] & np.isnan(x[in_slice]))
    return indices


class PoolOps:
    def max_pool2d(self, x, kernel_size, stride, padding, dilation, out_size, with_indices=True,
                   index_dtype=np.int64):
        (sh, sw), (ph, pw), (dh, dw), (oh, ow) = stride, padding, dilation, out_size
        n, c, h, w = x.shape
        taps = list(_tap_slices(kernel_size, stride, padding, dilation, (h, w), out_size))
        if with_indices and is_pairwise(x.shape, kernel_size, stride, padding, dilation, out_size):
            y, indices = _max_pool_2x2(x, oh, ow)
            return y, _last_nan(y, indices, x, taps, stride, w).astype(index_dtype, copy=False)
        y = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)  # padding acts as -inf
        # The kernel's choice: the first tap in row-major order that holds the maximum (a tap is
        # recorded where it is strictly greater than the maximum so far), the last NaN of a window
        # holding NaN (fixed below); a window without input elements keeps its first tap moved into
        # the plane by whole dilation steps (PyTorch's rule), which is also the first tap of an all
        # -inf one: those keep the tap number -1.
        best = np.full(y.shape, -1, dtype=np.int16 if len(taps) < 2**15 else np.int32) if with_indices else None
        for tap, (out_slice, in_slice) in enumerate(taps):
            window, so_far = x[in_slice], y[out_slice]
            if with_indices:
                np.copyto(best[out_slice], tap, where=window > so_far)
            np.maximum(so_far, window, out=so_far)  # propagates NaN, as PyTorch does
        if not with_indices:
            return y, None
        # Tap t of output (oy, ox) reads plane position (oy*sh - ph)*w + ox*sw - pw + offsets[t];
        # the extra last entry serves the windows left at -1.
        offsets = np.array([(ins[2].start - outs[2].start * sh + ph) * w + ins[3].start - outs[3].start * sw + pw
                            for outs, ins in taps] + [0], dtype=np.int64)
        indices = offsets[best]
        indices += (np.arange(oh)[:, None] * sh - ph) * w + (np.arange(ow)[None, :] * sw - pw)
        unset = best < 0
        if unset.any():
            first_row = np.arange(oh)[:, None] * sh - ph
            first_row = first_row + dh * np.maximum(0, -(first_row // dh))
            first_col = np.arange(ow)[None, :] * sw - pw
            first_col = first_col + dw * np.maximum(0, -(first_col // dw))
            np.copyto(indices, np.broadcast_to(first_row * w + first_col, indices.shape), where=unset)

        return y, _last_nan(y, indices, x, taps, stride, w).astype(index_dtype, copy=False)

    def max_pool2d_backward(self, dy, indices, x_shape, kernel_size, stride, padding, dilation, check_indices=True):
        """(dx, whether every index of a window with input elements names one of them; True unchecked
        when ``check_indices`` is False)."""
        # A window without input elements (dilation over padding) passes nothing on, as in the
        # kernel's gather; PyTorch's index for it may name an element outside that window.
        live = np.ones(dy.shape[2:], dtype=bool)
        for axis, (size, k, s, p, d, o) in enumerate(zip(x_shape[2:], kernel_size, stride, padding, dilation,
                                                         dy.shape[2:])):
            start = np.arange(o) * s - p
            first = start + d * np.maximum(0, -(start // d))  # the first tap inside the plane
            inside = (first < size) & (first <= start + (k - 1) * d)
            live &= inside[:, None] if axis == 0 else inside[None, :]
        if not live.all():
            dy = dy * live
        if check_indices:
            valid = _indices_in_windows(indices, x_shape, kernel_size, stride, padding, dilation, dy.shape[2:])
            checked = bool((valid | ~live).all())
        else:
            checked = True  # max_pool2d's own indices name taps of their windows
        # Disjoint windows hold distinct positions; that holds for the indices only once they are
        # known to name positions of their own windows, and every window is live (a dead window's
        # index may name a position of another window: its zero must be added, not written).
        disjoint = checked and live.all() and all(s >= (k - 1) * d + 1 for k, s, d in zip(kernel_size, stride, dilation))
        return _gather_by_index(dy, indices, x_shape, disjoint), checked

    def avg_pool2d(self, x, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
        ones = (1, 1)
        if _needs_padding(x.shape[2:], kernel_size, stride, padding, ones, out_size):
            total = np.zeros((*x.shape[:2], *out_size), dtype=x.dtype)  # padding adds zeros: skipped
            for out_slice, in_slice in _tap_slices(kernel_size, stride, padding, ones, x.shape[2:], out_size):
                total[out_slice] += x[in_slice]
        else:
            total = _window_sum(x, kernel_size, stride, ones, out_size)
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
                region = x[:, :, y0:y1, x0:x1].reshape(n, c, (y1 - y0) * (x1 - x0))
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
        """(dx, whether every index names an element of its bin)."""
        h, w = x_shape[2:]
        row, col = np.divmod(indices.astype(np.int64, copy=False), w)
        valid = (row >= 0) & (row < h)
        for axis, (size, o) in enumerate(zip((h, w), dy.shape[2:])):
            bins = np.array(_bins(size, o))
            lo, hi = (bins[:, 0, None], bins[:, 1, None]) if axis == 0 else (bins[None, :, 0], bins[None, :, 1])
            position = row if axis == 0 else col
            valid &= (position >= lo) & (position < hi)
        return _gather_by_index(dy, indices, x_shape), bool(valid.all())

    # ---- GeM --------------------------------------------------------------------------------------
    # As in kernels/pool.cu, each window's maximum M of c = max(x, eps) is factored out: with
    # r = c / M and m' = mean(r^p), y = M * m'^(1/p), dy/dc = r^(p-1) * m'^(1/p-1) / K and
    # dy/dp = y * (S / (K*p*m') - log(m') / p^2), S = sum(r^p * log(r)): no overflow for large p.
    @staticmethod
    def _gem_terms(c, p, kernel_size, stride, out_size, with_log):
        """(window max M, sum of r^p, sum of r^p * log r or None), each (N, C, OH, OW)."""
        if tuple(kernel_size) == c.shape[2:]:  # global: one window
            wmax = c.max(axis=(2, 3), keepdims=True)
            r = c / wmax
            rp = r ** p
            return wmax, rp.sum(axis=(2, 3), keepdims=True), \
                (rp * np.log(r)).sum(axis=(2, 3), keepdims=True) if with_log else None
        wmax = _windows(c, kernel_size, stride, (1, 1), out_size).max(axis=(2, 3))
        total = np.zeros_like(wmax)
        log_total = np.zeros_like(wmax) if with_log else None
        for out_slice, in_slice in _tap_slices(kernel_size, stride, (0, 0), (1, 1), c.shape[2:], out_size):
            r = c[in_slice] / wmax[out_slice]
            rp = r ** p
            total[out_slice] += rp
            if with_log:
                log_total[out_slice] += rp * np.log(r)
        return wmax, total, log_total

    def gem(self, x, p, eps, kernel_size, stride, out_size):
        p = x.dtype.type(p[0])
        c = np.maximum(x, x.dtype.type(eps))
        with np.errstate(invalid="ignore"):  # inf / inf in a window holding +inf: its result is inf
            wmax, total, _ = self._gem_terms(c, p, kernel_size, stride, out_size, False)
            y = wmax * (total / (kernel_size[0] * kernel_size[1])) ** (1 / p)
        return np.where(np.isinf(wmax), wmax, y).astype(x.dtype)

    def gem_backward(self, dy, x, p, eps, kernel_size, stride, need_dx, need_dp):
        p = x.dtype.type(p[0])
        k = kernel_size[0] * kernel_size[1]
        c = np.maximum(x, x.dtype.type(eps))
        out_size = dy.shape[2:]
        wmax, total, log_total = self._gem_terms(c, p, kernel_size, stride, out_size, need_dp)
        m = total / k
        dx = dp = None
        if need_dp:
            y = wmax * m ** (1 / p)
            dp = np.asarray([np.sum(dy * y * (log_total / (k * p * m) - np.log(m) / (p * p)))], dtype=x.dtype)
        if need_dx:
            coef = (dy * m ** (1 / p - 1) / k).astype(x.dtype)
            if tuple(kernel_size) == x.shape[2:]:  # global: one window
                dx = coef * (c / wmax) ** (p - 1)
            else:
                dx = np.zeros(x.shape, dtype=x.dtype)
                for out_slice, in_slice in _tap_slices(kernel_size, stride, (0, 0), (1, 1), x.shape[2:],
                                                             out_size):
                    dx[in_slice] += coef[out_slice] * (c[in_slice] / wmax[out_slice]) ** (p - 1)
            dx *= x >= eps
        return dx, dp

    # ---- LP pooling -------------------------------------------------------------------------------
    # PyTorch's formula: y = (avg_pool2d(x^p) * K)^(1/p) over windows without padding, K = kh*kw, so
    # a ceil_mode window overhanging the input is scaled by K / (its elements inside). Only the last
    # output row and column can overhang (the windows before them end inside the input), so the
    # scale is applied to them alone. Written with the module's ``np`` only (no as_strided, no
    # np.outer): the memory estimator runs it on shape-only arrays (gpuconv.backend.shape_only).
    @staticmethod
    def _lp_window_sums(x, p, kernel_size, stride, out_size):
        """(N, C, OH, OW) sums of x^p over each window's elements inside the input, each times
        K / (its element count): PyTorch's avg_pool2d(x^p, ceil_mode) * K."""
        powered = x ** x.dtype.type(p)
        total = np.zeros((*x.shape[:2], *out_size), dtype=x.dtype)
        for out_slice, in_slice in _tap_slices(kernel_size, stride, (0, 0), (1, 1), x.shape[2:], out_size):
            total[out_slice] += powered[in_slice]
        del powered
        _scale_overhang(total, x.shape[2:], kernel_size, stride, out_size)
        return total

    def lp_pool2d(self, x, p, kernel_size, stride, out_size):
        with np.errstate(invalid="ignore", divide="ignore"):  # x^p of x < 0 is NaN, as in PyTorch
            total = self._lp_window_sums(x, p, kernel_size, stride, out_size)
            np.power(total, x.dtype.type(1.0 / p), out=total)
        return total

    def lp_pool2d_backward(self, dy, x, p, kernel_size, stride):
        """dx = p x^(p-1) * sum over windows of [u != 0] dy (1/p) u^(1/p - 1) K / count, u the window's
        scaled sum (recomputed from x): PyTorch's chain rule through its formula, in which a window
        whose sum is 0 passes nothing on (its relu)."""
        out_size = dy.shape[2:]
        t = x.dtype.type
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            u = self._lp_window_sums(x, p, kernel_size, stride, out_size)
            coef = u ** t(1.0 / p - 1.0)
            coef *= t(1.0 / p)
            coef *= dy
            _scale_overhang(coef, x.shape[2:], kernel_size, stride, out_size)  # K / count
            np.copyto(coef, t(0), where=u == 0)
            del u
            dx = _scatter_taps(coef, x.shape, kernel_size, stride, (0, 0), (1, 1))
            del coef
            slope = x ** t(p - 1.0)
            slope *= t(p)
            dx *= slope
        return dx
