"""im2col / col2im on NumPy: a strided view of the padded input, copied once into the layout."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _padded(x: np.ndarray, kernel_size, stride, padding, dilation, out_size) -> np.ndarray:
    """``x`` zero-padded by (top, left) and, at the bottom/right, by whatever the windows reach."""
    (kh, kw), (sh, sw), (pt, pl), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, out_size
    h, w = x.shape[2:]
    pb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt)
    pr = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl)
    if pt or pb or pl or pr:
        # np.zeros and one slice copy: the same bytes as np.pad, without its per-axis Python work
        # (8% of a ResNet-18 inference at (8, 3, 64, 64)).
        padded = np.zeros((*x.shape[:2], h + pt + pb, w + pl + pr), dtype=x.dtype)
        padded[:, :, pt:pt + h, pl:pl + w] = x
        return padded
    return x


def windows(x: np.ndarray, kernel_size, stride, padding, dilation, out_size) -> np.ndarray:
    """A read-only (N, C, KH, KW, OH, OW) view of the sliding windows over the padded input."""
    xp = _padded(x, kernel_size, stride, padding, dilation, out_size)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_size
    n, c = x.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(xp, shape=(n, c, kh, kw, oh, ow),
                      strides=(s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw), writeable=False)


class Im2colOps:
    def im2col(self, x, kernel_size, stride, padding, dilation, out_size, layout):
        n, c = x.shape[:2]
        (kh, kw), (oh, ow) = kernel_size, out_size
        view = windows(x, kernel_size, stride, padding, dilation, out_size)
        if layout == "nkl":
            cols = view.reshape(n, c * kh * kw, oh * ow)
        else:
            cols = view.transpose(1, 2, 3, 0, 4, 5).reshape(c * kh * kw, n * oh * ow)
        # NOTE: a 1x1 window with stride 1 and no padding reshapes the read-only window view of x
        # without a copy; the result must be a fresh array like every other case.
        return cols if cols.flags.writeable else cols.copy()

    def col2im(self, cols, x_shape, kernel_size, stride, padding, dilation, out_size, layout):
        n, c, h, w = x_shape
        (kh, kw), (sh, sw), (pt, pl), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, out_size
        if layout == "nkl":
            cols6 = cols.reshape(n, c, kh, kw, oh, ow)
        else:
            cols6 = cols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
        hp = max(h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
        wp = max(w + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
        dx = np.zeros((n, c, hp, wp), dtype=cols.dtype)
        # One slice-add per kernel tap: the taps of one window position never overlap within a
        # slice, so this is exact and deterministic.
        for i in range(kh):
            for j in range(kw):
                dx[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw] += cols6[:, :, i, j]
        return np.ascontiguousarray(dx[:, :, pt:pt + h, pl:pl + w])
