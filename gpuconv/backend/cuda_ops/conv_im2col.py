"""Convolution by im2col + GEMM on the cupy and emulated backends (kernels/im2col.cu + cuBLAS).

Per batch chunk: the columns in layout "knl" (C*KH*KW, Nc*OH*OW) and ONE 2-D GEMM per group, so
cuBLAS honours CUPY_TF32. ``g`` is a ``gpuconv.functional.conv.ConvGeometry``; ``chunk`` is the
number of images whose columns fit the workspace limit.
"""

from __future__ import annotations


def _chunks(n: int, chunk: int):
    for start in range(0, n, chunk):
        yield start, min(n, start + chunk)


class ConvIm2colKernels:
    def _cols(self, x, g):
        return self.im2col(x, g.kernel_size, g.stride, g.pad_top_left, g.dilation, g.out_size, "knl")

    def conv2d_im2col_forward(self, x, weight, bias, g, chunk):
        kh, kw = g.kernel_size
        l_size = g.out_size[0] * g.out_size[1]
        rows, kg = (g.c_in // g.groups) * kh * kw, g.c_out // g.groups
        w2 = weight.reshape(g.c_out, rows)
        y = self.empty((g.n, g.c_out, l_size), x.dtype)
        for start, stop in _chunks(g.n, chunk):
            cols = self._cols(x[start:stop], g)
            out = self.empty((g.c_out, (stop - start) * l_size), x.dtype)
            for grp in range(g.groups):
                self.matmul(w2[grp * kg:(grp + 1) * kg], cols[grp * rows:(grp + 1) * rows],
                            out=out[grp * kg:(grp + 1) * kg])
            y[start:stop] = out.reshape(g.c_out, stop - start, l_size).transpose(1, 0, 2)
        if bias is not None:
            y += bias.reshape(1, g.c_out, 1)
        return y.reshape((g.n, g.c_out) + g.out_size)

    def _dy_knl(self, dy, start, stop, g):
        """dy[start:stop] as (C_out, Nc*OH*OW), the layout of the GEMMs."""
        nc = stop - start
        return self.xp.ascontiguousarray(dy[start:stop].reshape(nc, g.c_out, -1).transpose(1, 0, 2)).reshape(g.c_out, -1)

    def conv2d_im2col_backward_data(self, dy, weight, g, chunk):
        kh, kw = g.kernel_size
        rows, kg = (g.c_in // g.groups) * kh * kw, g.c_out // g.groups
        w2 = weight.reshape(g.c_out, rows)
        dx = self.empty((g.n, g.c_in, g.h, g.w), dy.dtype)
        for start, stop in _chunks(g.n, chunk):
            dyk = self._dy_knl(dy, start, stop, g)
            dcols = self.empty((g.c_in * kh * kw, dyk.shape[1]), dy.dtype)
            for grp in range(g.groups):
                self.matmul(w2[grp * kg:(grp + 1) * kg].T, dyk[grp * kg:(grp + 1) * kg],
                            out=dcols[grp * rows:(grp + 1) * rows])
            dx[start:stop] = self.col2im(dcols, (stop - start, g.c_in, g.h, g.w), g.kernel_size, g.stride,
                                         g.pad_top_left, g.dilation, g.out_size, "knl")
        return dx

    def conv2d_im2col_backward_weight(self, dy, x, g, chunk):
        kh, kw = g.kernel_size
        rows, kg = (g.c_in // g.groups) * kh * kw, g.c_out // g.groups
        dw = self.zeros((g.c_out, rows), x.dtype)
        for start, stop in _chunks(g.n, chunk):
            cols = self._cols(x[start:stop], g)
            dyk = self._dy_knl(dy, start, stop, g)
            for grp in range(g.groups):
                part = self.matmul(dyk[grp * kg:(grp + 1) * kg], cols[grp * rows:(grp + 1) * rows].T)
                dw[grp * kg:(grp + 1) * kg] += part
        return dw.reshape(g.c_out, g.c_in // g.groups, kh, kw)
