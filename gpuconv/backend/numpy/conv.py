"""Convolution on NumPy: im2col through a strided view of the input, then BLAS GEMMs.

The columns of a batch chunk are ONE copy out of the sliding-window view (no intermediate
transposes), laid out so that every GEMM reads and writes contiguous 2-D blocks that BLAS takes
as they are (transposed operands go to BLAS as transposed, not copied):
- forward: (Nc, C*KH*KW, OH*OW) and one GEMM per image and group (``np.matmul`` loops over them in
  C), so the output needs no transpose; for small images (OH*OW < 1024) the chunk's columns sit
  side by side, (C*KH*KW, Nc*OH*OW), for one wide GEMM per group, and the small output is
  transposed back.
- backward data: with stride 1 and C_out <= C_in (the common case) a forward convolution of dy
  with the flipped, channel-swapped kernel; otherwise one GEMM per image and group, then col2im.
- backward weight: (C*KH*KW, Nc*OH*OW), so the reduction over the batch happens inside one GEMM
  per group.
- an image whose columns alone exceed CACHE_CHUNK_BYTES (VGG's first layers) is cut into bands
  of output rows, so that the columns of one step stay about CACHE_CHUNK_BYTES.
The numpy backend runs this for ``algo="implicit_gemm"`` too (``"direct"`` is conv_direct.py). ``g`` is a
ConvGeometry; ``chunk`` is the number of images whose columns fit the workspace limit; the CPU path
cuts the batch finer still (see CACHE_CHUNK_BYTES), so its workspace never exceeds what the limit
allows.
"""

from __future__ import annotations

import numpy as np

from ... import flags
from ..cuda import conv_im2col as kernel_im2col
from ..cuda import conv_implicit_gemm as kernel_igemm
from . import conv_transient
from .im2col import windows


def _window_view(x, g):
    return windows(x, g.kernel_size, g.stride, g.pad_top_left, g.dilation, g.out_size)


# Below this many output positions per image, one GEMM per image is too thin for BLAS: the chunk's
# columns go side by side, (C*KH*KW, Nc*OH*OW), and the output is transposed back afterwards.
WIDE_GEMM_BELOW = 1024
# The CPU path cuts the batch finer than the workspace limit asks: columns of about this many bytes
# are still in cache when the GEMM reads them right after the copy, and stay below glibc's mmap
# threshold, so the buffer is reused from the heap instead of page-faulted in again on every call.
CACHE_CHUNK_BYTES = 8 * 2**20


def _cpu_chunk(g, chunk: int, itemsize: int) -> int:
    """Images per chunk: as few as fit CACHE_CHUNK_BYTES of columns, but enough for a GEMM at least
    WIDE_GEMM_BELOW wide, and never more than ``chunk`` (the workspace limit)."""
    l_size = g.out_size[0] * g.out_size[1]
    by_cache = CACHE_CHUNK_BYTES // max(1, g.column_bytes_per_image(itemsize))
    by_width = -(-WIDE_GEMM_BELOW // l_size)
    return max(1, min(chunk, g.n, max(by_cache, by_width)))


def _row_band(g, itemsize: int) -> int:
    """Output rows per band when one image's columns exceed CACHE_CHUNK_BYTES (large images): the
    image is then cut into bands of rows, each at least WIDE_GEMM_BELOW positions wide."""
    oh, ow = g.out_size
    per_row = max(1, g.column_bytes_per_image(itemsize) // oh)
    return max(1, min(oh, max(CACHE_CHUNK_BYTES // per_row, -(-WIDE_GEMM_BELOW // ow))))



def _row_bands(view, buf, g, band):
    """Yields (n, r0, r1, cols) for each band of output rows r0:r1 of each image n, ``cols`` being
    that band's columns copied from the windows ``view`` into the scratch ``buf``."""
    oh = g.out_size[0]
    for n in range(g.n):
        for r0 in range(0, oh, band):
            r1 = min(oh, r0 + band)
            cols = buf[:, :, :, :r1 - r0]
            np.copyto(cols, view[n, :, :, :, r0:r1])
            yield n, r0, r1, cols

class NumpyConvOps:
    # The workspace the kernel launchers allocate, which every backend reports (see the docstring of
    # gpuconv.functional.conv_algos), and what the code below allocates (conv_transient.py).
    conv2d_im2col_workspace = staticmethod(kernel_im2col.column_workspace)
    conv2d_gemm_workspace = staticmethod(kernel_im2col.gemm_workspace)

    @staticmethod
    def conv2d_im2col_transient_bytes(g, direction: str, itemsize: int, chunk: int) -> int:
        return conv_transient.im2col_transient_bytes(g, direction, itemsize, chunk)

    def conv2d_im2col_forward(self, x, weight, bias, g, chunk):
        chunk = _cpu_chunk(g, chunk, x.dtype.itemsize)
        band = _row_band(g, x.dtype.itemsize)
        if chunk == 1 and band < g.out_size[0]:
            return self._forward_by_bands(x, weight, bias, g, band)
        kh, kw = g.kernel_size
        (oh, ow), groups = g.out_size, g.groups
        rows, kg, l_size = (g.c_in // groups) * kh * kw, g.c_out // groups, oh * ow
        w3 = weight.reshape(groups, kg, rows)
        y = np.empty((g.n, groups, kg, l_size), dtype=x.dtype)
        view = _window_view(x, g)
        per_image = l_size >= WIDE_GEMM_BELOW
        if per_image:
            buf = np.empty((min(chunk, g.n), g.c_in, kh, kw, oh, ow), dtype=x.dtype)
        else:
            view = view.transpose(1, 2, 3, 0, 4, 5)
            buf = np.empty((g.c_in, kh, kw, min(chunk, g.n), oh, ow), dtype=x.dtype)
            out = np.empty((groups, kg, min(chunk, g.n) * l_size), dtype=x.dtype)
        for start in range(0, g.n, chunk):
            stop = min(g.n, start + chunk)
            nc = stop - start
            if per_image:
                cols = buf[:nc]
                np.copyto(cols, view[start:stop])
                np.matmul(w3, cols.reshape(nc, groups, rows, l_size), out=y[start:stop])
            else:
                cols = buf if nc == buf.shape[3] else np.empty((g.c_in, kh, kw, nc, oh, ow), dtype=x.dtype)
                np.copyto(cols, view[:, :, :, start:stop])
                part = out[:, :, :nc * l_size]
                np.matmul(w3, cols.reshape(groups, rows, nc * l_size), out=part)
                np.copyto(y[start:stop], part.reshape(groups, kg, nc, l_size).transpose(2, 0, 1, 3))
        y = y.reshape(g.n, g.c_out, oh, ow)
        if bias is not None:
            y += bias.reshape(1, g.c_out, 1, 1)
        return y

    def _forward_by_bands(self, x, weight, bias, g, band):
        kh, kw = g.kernel_size
        (oh, ow), groups = g.out_size, g.groups
        rows, kg = (g.c_in // groups) * kh * kw, g.c_out // groups
        w3 = weight.reshape(groups, kg, rows)
        y = np.empty((g.n, groups, kg, oh * ow), dtype=x.dtype)
        view = _window_view(x, g)
        buf = np.empty((g.c_in, kh, kw, band, ow), dtype=x.dtype)
        for n, r0, r1, cols in _row_bands(view, buf, g, band):
            # The band's outputs are a 2-D block with a row stride: BLAS writes it in place.
            np.matmul(w3, cols.reshape(groups, rows, (r1 - r0) * ow), out=y[n, :, :, r0 * ow:r1 * ow])
        y = y.reshape(g.n, g.c_out, oh, ow)
        if bias is not None:
            y += bias.reshape(1, g.c_out, 1, 1)
        return y

    def conv2d_im2col_backward_data(self, dy, weight, g, chunk):
        kh, kw = g.kernel_size
        (pt, pb, pl, pr), (dh, dw) = g.padding, g.dilation
        span_h, span_w = dh * (kh - 1), dw * (kw - 1)
        if g.stride == (1, 1) and span_h >= max(pt, pb) and span_w >= max(pl, pr) and g.c_out <= g.c_in:
            # With stride 1, dx is a forward convolution of dy with the kernel flipped and its
            # channel axes swapped (per group): no col2im scatter-adds. Its columns hold C_out
            # channels where col2im's hold C_in, so it only pays when C_out <= C_in (LeNet-5's
            # 6 -> 16 conv: 3.6 ms this way against 1.4 ms through col2im, one thread).
            cg, kg = g.c_in // g.groups, g.c_out // g.groups
            flipped = weight.reshape(g.groups, kg, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
            flipped = np.ascontiguousarray(flipped).reshape(g.c_in, kg, kh, kw)
            gt = g._replace(c_in=g.c_out, h=g.out_size[0], w=g.out_size[1], c_out=g.c_in,
                            padding=(span_h - pt, span_h - pb, span_w - pl, span_w - pr), out_size=(g.h, g.w))
            budget = chunk * g.column_bytes_per_image(dy.dtype.itemsize)
            chunk_t = max(1, min(g.n, budget // max(1, gt.column_bytes_per_image(dy.dtype.itemsize))))
            return self.conv2d_im2col_forward(dy, flipped, None, gt, chunk_t)
        return self._backward_data_col2im(dy, weight, g, chunk)

    def _backward_data_col2im(self, dy, weight, g, chunk):
        chunk = _cpu_chunk(g, chunk, dy.dtype.itemsize)
        kh, kw = g.kernel_size
        (oh, ow), groups = g.out_size, g.groups
        rows, kg = (g.c_in // groups) * kh * kw, g.c_out // groups
        wt = weight.reshape(groups, kg, rows).transpose(0, 2, 1)
        dy4 = dy.reshape(g.n, groups, kg, oh * ow)
        dx = np.empty((g.n, g.c_in, g.h, g.w), dtype=dy.dtype)
        dcols = np.empty((min(chunk, g.n), groups, rows, oh * ow), dtype=dy.dtype)
        for start in range(0, g.n, chunk):
            stop = min(g.n, start + chunk)
            part = dcols[:stop - start]
            np.matmul(wt, dy4[start:stop], out=part)
            dx[start:stop] = self.col2im(part.reshape(stop - start, g.c_in * kh * kw, oh * ow),
                                         (stop - start, g.c_in, g.h, g.w), g.kernel_size, g.stride,
                                         g.pad_top_left, g.dilation, g.out_size, "nkl")
        return dx

    def conv2d_im2col_backward_weight(self, dy, x, g, chunk):
        chunk = _cpu_chunk(g, chunk, x.dtype.itemsize)
        band = _row_band(g, x.dtype.itemsize)
        if chunk == 1 and band < g.out_size[0]:
            return self._backward_weight_by_bands(dy, x, g, band)
        kh, kw = g.kernel_size
        (oh, ow), groups = g.out_size, g.groups
        rows, kg = (g.c_in // groups) * kh * kw, g.c_out // groups
        view = _window_view(x, g).transpose(1, 2, 3, 0, 4, 5)
        dy3 = dy.reshape(g.n, g.c_out, oh * ow)
        dw = np.zeros((groups, kg, rows), dtype=x.dtype)
        buf = np.empty((g.c_in, kh, kw, min(chunk, g.n), oh, ow), dtype=x.dtype)
        for start in range(0, g.n, chunk):
            stop = min(g.n, start + chunk)
            nc = stop - start
            cols = buf if nc == buf.shape[3] else np.empty((g.c_in, kh, kw, nc, oh, ow), dtype=x.dtype)
            np.copyto(cols, view[:, :, :, start:stop])
            dyk = np.ascontiguousarray(dy3[start:stop].transpose(1, 0, 2)).reshape(groups, kg, nc * oh * ow)
            dw += np.matmul(dyk, cols.reshape(groups, rows, nc * oh * ow).transpose(0, 2, 1))
        return dw.reshape(g.c_out, g.c_in // groups, kh, kw)

    def _backward_weight_by_bands(self, dy, x, g, band):
        kh, kw = g.kernel_size
        (oh, ow), groups = g.out_size, g.groups
        rows, kg = (g.c_in // groups) * kh * kw, g.c_out // groups
        view = _window_view(x, g)
        dy4 = dy.reshape(g.n, groups, kg, oh * ow)
        dw = np.zeros((groups, kg, rows), dtype=x.dtype)
        buf = np.empty((g.c_in, kh, kw, band, ow), dtype=x.dtype)
        for n, r0, r1, cols in _row_bands(view, buf, g, band):
            width = (r1 - r0) * ow
            dw += np.matmul(dy4[n, :, :, r0 * ow:r1 * ow], cols.reshape(groups, rows, width).transpose(0, 2, 1))
        return dw.reshape(g.c_out, g.c_in // groups, kh, kw)

    # "gemm": a 1x1 kernel with stride 1 and no padding, one batched GEMM straight into NCHW.
    def conv2d_gemm_forward(self, x, weight, bias, g):
        groups, cg, kg = g.groups, g.c_in // g.groups, g.c_out // g.groups
        y = np.empty((g.n, g.c_out, g.h, g.w), dtype=x.dtype)
        np.matmul(weight.reshape(groups, kg, cg), x.reshape(g.n, groups, cg, g.h * g.w),
                  out=y.reshape(g.n, groups, kg, g.h * g.w))
        if bias is not None:
            y += bias.reshape(1, g.c_out, 1, 1)
        return y

    def conv2d_gemm_backward_data(self, dy, weight, g):
        groups, cg, kg = g.groups, g.c_in // g.groups, g.c_out // g.groups
        dx = np.empty((g.n, g.c_in, g.h, g.w), dtype=dy.dtype)
        np.matmul(weight.reshape(groups, kg, cg).transpose(0, 2, 1), dy.reshape(g.n, groups, kg, g.h * g.w),
                  out=dx.reshape(g.n, groups, cg, g.h * g.w))
        return dx

    # No separate implicit GEMM on the CPU: the GEMMs above are its implicit GEMM, run with the whole
    # batch in one chunk capped at the default workspace limit. ``direct`` is conv_direct.py.
    # It refuses what the kernels refuse and reports what they allocate (see the docstring of
    # gpuconv.functional.conv_algos: a program that runs here runs on a GPU, and ``auto`` picks
    # the same algorithms on every backend).
    conv2d_implicit_gemm_unsupported_reason = staticmethod(kernel_igemm.unsupported_reason)
    conv2d_implicit_gemm_workspace = staticmethod(kernel_igemm.workspace_bytes)

    def conv2d_implicit_gemm_forward(self, x, weight, bias, g):
        return self.conv2d_im2col_forward(x, weight, bias, g, _default_chunk(g, x.dtype))

    def conv2d_implicit_gemm_backward_data(self, dy, weight, g):
        return self.conv2d_im2col_backward_data(dy, weight, g, _default_chunk(g, dy.dtype))

    def conv2d_implicit_gemm_backward_weight(self, dy, x, g):
        return self.conv2d_im2col_backward_weight(dy, x, g, _default_chunk(g, x.dtype))


def _default_chunk(g, dtype) -> int:
    return g.images_per_chunk(np.dtype(dtype).itemsize, flags.DEFAULT_WORKSPACE_LIMIT)
