"""Convolution on NumPy: im2col through a strided view of the input, then BLAS GEMMs.

The columns of a batch chunk are ONE copy out of the sliding-window view (no intermediate
transposes), laid out so that every GEMM reads and writes contiguous 2-D blocks that BLAS takes
as they are: forward and backward-data use (Nc, C*KH*KW, OH*OW) and one GEMM per image and group
(``np.matmul`` loops over them in C), so the output needs no transpose; backward-weight uses
(C*KH*KW, Nc*OH*OW) so that the reduction over the batch happens inside one GEMM per group.
The numpy backend runs this for ``algo="direct"`` too. ``g`` is a ConvGeometry; ``chunk`` is the
number of images whose columns fit the workspace limit.
"""

from __future__ import annotations

import numpy as np

from .im2col import windows


def _window_view(x, g):
    return windows(x, g.kernel_size, g.stride, g.pad_top_left, g.dilation, g.out_size)


class NumpyConvOps:
    def conv2d_im2col_forward(self, x, weight, bias, g, chunk):
        kh, kw = g.kernel_size
        (oh, ow), groups = g.out_size, g.groups
        rows, kg = (g.c_in // groups) * kh * kw, g.c_out // groups
        w3 = weight.reshape(groups, kg, rows)
        y = np.empty((g.n, groups, kg, oh * ow), dtype=x.dtype)
        view = _window_view(x, g)
        buf = np.empty((min(chunk, g.n), g.c_in, kh, kw, oh, ow), dtype=x.dtype)
        for start in range(0, g.n, chunk):
            stop = min(g.n, start + chunk)
            cols = buf[:stop - start]
            np.copyto(cols, view[start:stop])
            np.matmul(w3, cols.reshape(stop - start, groups, rows, oh * ow), out=y[start:stop])
        y = y.reshape(g.n, g.c_out, oh, ow)
        if bias is not None:
            y += bias.reshape(1, g.c_out, 1, 1)
        return y

    def conv2d_im2col_backward_data(self, dy, weight, g, chunk):
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

    # The numpy backend has no separate direct algorithm: it runs the im2col implementation, with
    # the whole batch in one chunk capped at the default workspace limit.
    def conv2d_direct_forward(self, x, weight, bias, g):
        return self.conv2d_im2col_forward(x, weight, bias, g, _default_chunk(g, x.dtype))

    def conv2d_direct_backward_data(self, dy, weight, g):
        return self.conv2d_im2col_backward_data(dy, weight, g, _default_chunk(g, dy.dtype))

    def conv2d_direct_backward_weight(self, dy, x, g):
        return self.conv2d_im2col_backward_weight(dy, x, g, _default_chunk(g, x.dtype))


def _default_chunk(g, dtype) -> int:
    return g.images_per_chunk(np.dtype(dtype).itemsize, 256 * 2**20)
