"""Direct convolution on NumPy: one GEMM per kernel tap on a shifted view of the input, no column
buffer (the numpy backend's ``algo="direct"``, and its low-memory path).

The trick that makes a shifted window a plain matrix for BLAS: the padded input is split into its
stride phases and laid out channel-major, ``Q[a, b] = xp[:, :, a::sh, b::sw]`` as (C, N*Hq*Wq).
Output (n, oh, ow) of tap (i, j) reads phase (i*dh % sh, j*dw % sw) at phase position
(oh + i*dh // sh, ow + j*dw // sw), so for every output on the grid of phase positions the tap's
operand is ONE contiguous slice ``Q[a, b][:, off:off + M]`` (off = its flat offset, M the span of
the batch's outputs): a (C, M) matrix with a row stride, which BLAS reads in place. The outputs are
computed on the whole (Hq, Wq) grid of each image (positions past OH or OW are wasted work, a
factor Hq*Wq / (OH*OW)), and the valid (OH, OW) corner is copied out into NCHW at the end.

- forward: y = sum over taps of W[:, :, i, j] @ slice; the first tap writes, the others add.
- backward data: the adjoint: each tap adds W[:, :, i, j]^T @ dy into its slice of dQ, where dy
  sits on the phase grid with zeros at the wasted positions; dQ is then folded back into dx.
- backward weight: dW[:, :, i, j] = dy @ slice^T, one GEMM per tap and nothing to accumulate.

Workspace: the phase copy of the padded input (about the input's size), an output-sized
accumulator and one output-sized product (backward weight: dy on the grid), never C*KH*KW copies.
"""

from __future__ import annotations

import numpy as np

from ..cuda import conv_direct as kernel_direct
from . import conv_transient


def _grid(g):
    """(sh, sw, Hq, Wq): the stride and the phase grid that reaches every window's last tap."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = g.kernel_size, g.stride, g.dilation, g.out_size
    return sh, sw, oh + (kh - 1) * dh // sh, ow + (kw - 1) * dw // sw


def _taps(g, wq):
    """(i, j, a, b, offset) per tap: its phase (a, b) and the flat offset of its window in the phase."""
    (kh, kw), (sh, sw), (dh, dw) = g.kernel_size, g.stride, g.dilation
    return [(i, j, i * dh % sh, j * dw % sw, (i * dh // sh) * wq + j * dw // sw) for i in range(kh) for j in range(kw)]


def _phase_rows(phase: int, stride: int, pad: int, size: int, grid: int) -> tuple[slice, slice]:
    """Along one axis: (grid positions, input positions) of phase ``phase`` that hold input elements."""
    first = max(0, -(-(pad - phase) // stride))  # the first grid position t with phase + t*stride >= pad
    start = phase + first * stride - pad
    count = max(0, min(grid - first, -(-(size - start) // stride)))
    return slice(first, first + count), slice(start, start + (count - 1) * stride + 1 if count else start, stride)


def _phase_slices(g, sh, sw, hq, wq):
    """((a, b), grid slices, input slices) of each stride phase that holds input elements."""
    pt, pl = g.padding[0], g.padding[2]
    for a in range(sh):
        rows_q, rows_x = _phase_rows(a, sh, pt, g.h, hq)
        for b in range(sw):
            cols_q, cols_x = _phase_rows(b, sw, pl, g.w, wq)
            if rows_q.stop > rows_q.start and cols_q.stop > cols_q.start:
                yield a, b, (rows_q, cols_q), (rows_x, cols_x)


def _phases(x, g):
    """The zero-padded input as (sh, sw, G, C/G, N*Hq*Wq): one copy of x, zeros around it."""
    sh, sw, hq, wq = _grid(g)
    q = np.zeros((sh, sw, g.c_in, g.n, hq, wq), dtype=x.dtype)
    for a, b, (rows_q, cols_q), (rows_x, cols_x) in _phase_slices(g, sh, sw, hq, wq):
        q[a, b, :, :, rows_q, cols_q] = x[:, :, rows_x, cols_x].transpose(1, 0, 2, 3)
    return q.reshape(sh, sw, g.groups, g.c_in // g.groups, g.n * hq * wq)


def _span(g, hq, wq) -> int:
    """Flat length from the first output of the batch to its last, on the (N, Hq, Wq) grid."""
    oh, ow = g.out_size
    return (g.n - 1) * hq * wq + (oh - 1) * wq + ow


def _tap_weights(weight, g):
    """(KH, KW, G, C_out/G, C_in/G): each tap's (G, Kg, Cg) matrices contiguous, as BLAS wants them."""
    kh, kw = g.kernel_size
    w = weight.reshape(g.groups, g.c_out // g.groups, g.c_in // g.groups, kh, kw)
    return np.ascontiguousarray(w.transpose(3, 4, 0, 1, 2))


def _dy_on_grid(dy, g, hq, wq):
    """dy as (G, C_out/G, N*Hq*Wq): each image's (OH, OW) in the corner of its (Hq, Wq), zeros elsewhere."""
    oh, ow = g.out_size
    grid = np.zeros((g.c_out, g.n, hq, wq), dtype=dy.dtype)
    grid[:, :, :oh, :ow] = dy.transpose(1, 0, 2, 3)
    return grid.reshape(g.groups, g.c_out // g.groups, g.n * hq * wq)


def wasted_factor(g) -> float:
    """Outputs computed over outputs kept: the (Hq, Wq) grid against the (OH, OW) output."""
    _, _, hq, wq = _grid(g)
    return hq * wq / (g.out_size[0] * g.out_size[1])


def numpy_heuristic(g, direction: str) -> str:
    """What ``algo="auto"`` runs on the numpy backend, measured per layer on a 2-core AMD EPYC (CPU
    time, one BLAS thread, the convolutions of LeNet-5 at batch 64 and ResNet-18 at (8, 3, 64, 64);
    whole models: benchmarks/results/model-ratios-numpy-cpu-2core-2026-12-07.md):

    - a 1x1 kernel, stride 1, no padding: ``"gemm"`` forward and backward data (no columns at all).
    - backward data with more output than input channels (C_out > C_in/groups >= 4 per group) and
      at most 2 outputs computed per output kept: ``"direct"``. im2col's columns then hold C_in*K*K
      rows scattered back by col2im (LeNet-5's 6 -> 16 conv: 1.74 ms) where direct adds each tap's
      GEMM into its shifted window (1.29 ms). With few input channels per tap the GEMMs are too
      thin (ResNet's 3-channel stem: 8.5 ms against im2col's 2.9).
    - everything else: ``"im2col"``: one GEMM over all taps beats K*K thinner ones, each followed by
      an add of the output (ResNet-18's 3x3 convs: direct 1.1-3.5x slower forward; deep 2x2 and
      4x4 planes waste 2-4x the work on the grid).
    """
    if g.is_pointwise and direction != "backward_weight":
        return "gemm"
    cg = g.c_in // g.groups
    if direction == "backward_data" and g.c_out // g.groups > cg >= 4 and wasted_factor(g) <= 2.0:
        return "direct"
    return "im2col"


class NumpyDirectConvOps:
    def conv_heuristic(self, g, direction: str) -> str:
        return numpy_heuristic(g, direction)

    # The direct kernels' workspace, which every backend reports (see the docstring of
    # gpuconv.functional.conv_algos), and what this module allocates (conv_transient.py).
    conv2d_direct_workspace = staticmethod(kernel_direct.workspace_bytes)

    @staticmethod
    def conv2d_direct_transient_bytes(g, direction: str, itemsize: int) -> int:
        return conv_transient.direct_transient_bytes(g, direction, itemsize)

    def conv2d_direct_forward(self, x, weight, bias, g):
        sh, sw, hq, wq = _grid(g)
        q, w = _phases(x, g), _tap_weights(weight, g)
        span, kg = _span(g, hq, wq), g.c_out // g.groups
        acc = np.empty((g.groups, kg, g.n * hq * wq), dtype=x.dtype)
        head = acc[:, :, :span]
        product = np.empty_like(head)
        for index, (i, j, a, b, off) in enumerate(_taps(g, wq)):
            np.matmul(w[i, j], q[a, b, :, :, off:off + span], out=head if index == 0 else product)
            if index:
                head += product
        oh, ow = g.out_size
        y = np.empty((g.n, g.c_out, oh, ow), dtype=x.dtype)
        np.copyto(y, acc.reshape(g.c_out, g.n, hq, wq)[:, :, :oh, :ow].transpose(1, 0, 2, 3))
        if bias is not None:
            y += bias.reshape(1, g.c_out, 1, 1)
        return y

    def conv2d_direct_backward_data(self, dy, weight, g):
        sh, sw, hq, wq = _grid(g)
        w = _tap_weights(weight, g).transpose(0, 1, 2, 4, 3)  # each tap's (G, Cg, Kg): W^T
        span, cg = _span(g, hq, wq), g.c_in // g.groups
        grid = _dy_on_grid(dy, g, hq, wq)[:, :, :span]
        dq = np.zeros((sh, sw, g.groups, cg, g.n * hq * wq), dtype=dy.dtype)
        product = np.empty((g.groups, cg, span), dtype=dy.dtype)
        for i, j, a, b, off in _taps(g, wq):
            np.matmul(w[i, j], grid, out=product)
            dq[a, b, :, :, off:off + span] += product
        dq = dq.reshape(sh, sw, g.c_in, g.n, hq, wq)
        dx = np.zeros((g.n, g.c_in, g.h, g.w), dtype=dy.dtype)
        for a, b, (rows_q, cols_q), (rows_x, cols_x) in _phase_slices(g, sh, sw, hq, wq):
            dx[:, :, rows_x, cols_x] = dq[a, b, :, :, rows_q, cols_q].transpose(1, 0, 2, 3)
        return dx

    def conv2d_direct_backward_weight(self, dy, x, g):
        sh, sw, hq, wq = _grid(g)
        q = _phases(x, g)
        span = _span(g, hq, wq)
        grid = _dy_on_grid(dy, g, hq, wq)[:, :, :span]
        kh, kw = g.kernel_size
        dw = np.empty((kh, kw, g.groups, g.c_out // g.groups, g.c_in // g.groups), dtype=x.dtype)
        for i, j, a, b, off in _taps(g, wq):
            np.matmul(grid, q[a, b, :, :, off:off + span].transpose(0, 2, 1), out=dw[i, j])
        return np.ascontiguousarray(dw.transpose(2, 3, 4, 0, 1)).reshape(g.c_out, g.c_in // g.groups, kh, kw)
