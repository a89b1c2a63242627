"""2-D convolution, forward and backward, with a choice of algorithm.

``conv2d`` and ``conv2d_backward`` follow PyTorch's semantics (NCHW input, weight
``(C_out, C_in/groups, KH, KW)``, int or pair arguments, padding ``"same"``/``"valid"``, groups).

Algorithms (``algo=``):

- ``"im2col"``: the input windows are copied into a column buffer and each group is one 2-D GEMM
  (cuBLAS on the GPU, BLAS on the CPU). The buffer is bounded by the workspace limit
  (:func:`set_workspace_limit`, default 256 MiB): the batch is processed in chunks of whole images.
  Chunking does not change what is computed, only how the GEMMs are cut: ``y`` and ``dx`` agree to
  the last bits (BLAS may pick another kernel for another GEMM width) and ``dweight`` sums one
  GEMM per chunk, equal up to the rounding of that sum order.
- ``"direct"``: kernels/conv_direct.cu, no workspace. On the numpy backend it runs the same NumPy
  implementation as ``"im2col"`` (there is no CPU "direct" code path worth having).
- ``"gemm"``: 1x1 kernel, stride 1, no padding: the convolution is a plain GEMM per image.
- ``"auto"``: :func:`choose_algo`.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from ..backend import get_backend
from ._args import check_array, non_negative_pair, out_size, positive_pair, same_dtype

ALGOS = ("auto", "im2col", "direct", "gemm")
DEFAULT_WORKSPACE_LIMIT = 256 * 2**20

_workspace_limit = DEFAULT_WORKSPACE_LIMIT


def set_workspace_limit(limit_bytes: int) -> None:
    """Sets the most bytes the im2col column buffer may take (the batch is chunked to fit).

    A single image's columns are never split, so one image larger than the limit is processed alone.
    """
    if not isinstance(limit_bytes, numbers.Integral) or isinstance(limit_bytes, bool) or limit_bytes < 1:
        raise ValueError(f"limit_bytes must be a positive int, got {limit_bytes!r}")
    global _workspace_limit
    _workspace_limit = int(limit_bytes)


def get_workspace_limit() -> int:
    """The current im2col workspace limit in bytes (default 256 MiB)."""
    return _workspace_limit


class ConvGeometry(NamedTuple):
    """Validated shape arithmetic of one convolution."""

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    out_size: tuple[int, int]

    @property
    def pad_top_left(self) -> tuple[int, int]:
        return self.padding[0], self.padding[2]

    @property
    def is_pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the convolution is a plain GEMM."""
        return self.kernel_size == (1, 1) and self.stride == (1, 1) and not any(self.padding)

    def column_bytes_per_image(self, itemsize: int) -> int:
        kh, kw = self.kernel_size
        return self.c_in * kh * kw * self.out_size[0] * self.out_size[1] * itemsize

    def images_per_chunk(self, itemsize: int, limit: int) -> int:
        per_image = max(1, self.column_bytes_per_image(itemsize))
        return max(1, min(self.n, limit // per_image))


def _resolve_padding(padding: Any, kernel_size, stride, dilation) -> tuple[int, int, int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' requires stride 1 (as in PyTorch), got stride={stride}")
            sides = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                sides += [total // 2, total - total // 2]
            return tuple(sides)
        raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    ph, pw = non_negative_pair(padding, "padding")
    return ph, ph, pw, pw


def conv_geometry(x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1) -> ConvGeometry:
    """Checks the shapes and arguments of a convolution and returns its :class:`ConvGeometry`."""
    x_shape, weight_shape = tuple(x_shape), tuple(weight_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x_shape}")
    if len(weight_shape) != 4:
        raise ValueError(f"weight must be 4-D (C_out, C_in/groups, KH, KW), got shape {weight_shape}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}")
    n, c_in, h, w = x_shape
    c_out, c_per_group, kh, kw = weight_shape
    if min(c_in, h, w) < 1:
        raise ValueError(f"x must have at least one channel, row and column, got shape {x_shape}")
    if min(weight_shape) < 1:
        raise ValueError(f"weight must have no empty dimension, got shape {weight_shape}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels of x, got C_in={c_in} (x shape {x_shape})")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels of weight, got C_out={c_out} "
                         f"(weight shape {weight_shape})")
    if c_per_group != c_in // groups:
        raise ValueError(f"weight: expected C_in/groups = {c_in}/{groups} = {c_in // groups} input channels in "
                         f"dimension 1, got {c_per_group} (weight shape {weight_shape}, x shape {x_shape})")
    stride = positive_pair(stride, "stride")
    dilation = positive_pair(dilation, "dilation")
    pads = _resolve_padding(padding, (kh, kw), stride, dilation)
    oh = out_size(h, kh, stride[0], pads[0] + pads[1], dilation[0])
    ow = out_size(w, kw, stride[1], pads[2] + pads[3], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"weight: kernel {kh}x{kw} with dilation {dilation} spans {dilation[0] * (kh - 1) + 1}x"
            f"{dilation[1] * (kw - 1) + 1}, larger than the padded input {h + pads[0] + pads[1]}x"
            f"{w + pads[2] + pads[3]} (x {h}x{w}, padding {padding!r})")
    return ConvGeometry(n, c_in, h, w, c_out, (kh, kw), stride, pads, dilation, int(groups), (oh, ow))


def choose_algo(x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1) -> str:
    """The algorithm ``algo="auto"`` runs, from shapes alone.

    Heuristic (an autotuner replaces it later): a 1x1 kernel with stride 1 and no padding is a plain
    GEMM (``"gemm"``); depthwise convolutions and layers with at most 4 input channels per group
    (too little reduction for an efficient GEMM, and a large column buffer for the work done) run
    ``"direct"``; everything else runs ``"im2col"``.
    """
    g = conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups)
    return _choose(g)


def _choose(g: ConvGeometry) -> str:
    if g.is_pointwise:
        return "gemm"
    if g.c_in // g.groups <= 4:
        return "direct"
    return "im2col"


def _check_algo(algo: Any, g: ConvGeometry) -> str:
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {', '.join(map(repr, ALGOS))}, got {algo!r}")
    if algo == "auto":
        return _choose(g)
    if algo == "gemm" and not g.is_pointwise:
        raise ValueError(f"algo='gemm' needs a 1x1 kernel with stride 1 and no padding, got kernel "
                         f"{g.kernel_size}, stride {g.stride}, padding {g.padding} (top, bottom, left, right)")
    return algo


def conv2d_workspace_bytes(x_shape, weight_shape, dtype, stride=1, padding=0, dilation=1, groups=1,
                           algo: str = "auto") -> int:
    """Bytes of workspace the chosen algorithm allocates besides inputs and outputs.

    For ``"im2col"`` that is the column buffer of one batch chunk under the current workspace
    limit (forward and backward use buffers of that size, one at a time): exact on the cupy and
    emulated backends, an upper bound on the numpy backend, which cuts the batch finer to stay in
    cache. ``"direct"`` and ``"gemm"`` use none (NOTE: on the numpy backend ``"direct"`` runs the
    im2col code, whose cache-sized column buffers, about 8 MiB, are not counted here).
    """
    g = conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups)
    algo = _check_algo(algo, g)
    if algo != "im2col":
        return 0
    itemsize = np.dtype(dtype).itemsize
    return g.images_per_chunk(itemsize, _workspace_limit) * g.column_bytes_per_image(itemsize)


def _check_inputs(x, weight, bias):
    check_array(x, "x", 4, "(N, C, H, W)")
    check_array(weight, "weight", 4, "(C_out, C_in/groups, KH, KW)")
    same_dtype("x", x, weight=weight)
    if bias is not None:
        check_array(bias, "bias", 1, "(C_out,)")
        same_dtype("x", x, bias=bias)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias must have C_out = {weight.shape[0]} elements (weight shape "
                             f"{tuple(weight.shape)}), got shape {tuple(bias.shape)}")


def conv2d(x: Any, weight: Any, bias: Any = None, stride=1, padding=0, dilation=1, groups: int = 1, *,
           algo: str = "auto") -> Any:
    """2-D convolution (cross-correlation, as PyTorch).

    Args:
        x: (N, C_in, H, W), float32 or float64.
        weight: (C_out, C_in/groups, KH, KW), same dtype.
        bias: (C_out,) or None.
        stride, dilation: int or pair, positive.
        padding: int or pair (zero padding on both sides), ``"valid"`` (none) or ``"same"`` (output
            size = input size; stride 1 only; an odd total goes one more to the bottom/right).
        groups: divides C_in and C_out; ``groups == C_in`` is depthwise.
        algo: ``"auto"``, ``"im2col"``, ``"direct"`` or ``"gemm"`` (see the module docstring).
    Returns:
        (N, C_out, OH, OW).
    """
    _check_inputs(x, weight, bias)
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    algo = _check_algo(algo, g)
    be = get_backend()
    xp = be.xp
    x, weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    if bias is not None:
        bias = xp.ascontiguousarray(bias)
    if g.n == 0:
        return be.zeros((0, g.c_out) + g.out_size, x.dtype)
    if algo == "gemm":
        return _gemm_forward(be, x, weight, bias, g)
    if algo == "direct":
        return be.conv2d_direct_forward(x, weight, bias, g)
    return be.conv2d_im2col_forward(x, weight, bias, g, g.images_per_chunk(x.dtype.itemsize, _workspace_limit))


def conv2d_backward(dy: Any, x: Any, weight: Any, stride=1, padding=0, dilation=1, groups: int = 1, *,
                    algo: str = "auto", needs=(True, True, True)) -> tuple[Any, Any, Any]:
    """Gradients of :func:`conv2d`.

    Args:
        dy: (N, C_out, OH, OW), the gradient of the output.
        x, weight, stride, padding, dilation, groups, algo: as given to :func:`conv2d`.
        needs: which of (dx, dweight, dbias) to compute.
    Returns:
        (dx (N, C_in, H, W), dweight (C_out, C_in/groups, KH, KW), dbias (C_out,)); None for the
        entries not needed.
    """
    _check_inputs(x, weight, None)
    check_array(dy, "dy", 4, "(N, C_out, OH, OW)")
    same_dtype("x", x, dy=dy)
    if not (isinstance(needs, (tuple, list)) and len(needs) == 3):
        raise ValueError(f"needs must be a tuple of 3 bools (dx, dweight, dbias), got {needs!r}")
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    algo = _check_algo(algo, g)
    expected = (g.n, g.c_out) + g.out_size
    if tuple(dy.shape) != expected:
        raise ValueError(f"dy must have the conv2d output shape {expected}, got {tuple(dy.shape)}")
    be = get_backend()
    xp = be.xp
    dy, x, weight = xp.ascontiguousarray(dy), xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    need_dx, need_dw, need_db = (bool(v) for v in needs)
    dx = dw = db = None
    if g.n == 0:
        return (be.zeros(x.shape, x.dtype) if need_dx else None, be.zeros(weight.shape, x.dtype) if need_dw else None,
                be.zeros((g.c_out,), x.dtype) if need_db else None)
    chunk = g.images_per_chunk(x.dtype.itemsize, _workspace_limit)
    if algo == "gemm":
        dx, dw = _gemm_backward(be, dy, x, weight, g, need_dx, need_dw)
    elif algo == "direct":
        dx = be.conv2d_direct_backward_data(dy, weight, g) if need_dx else None
        dw = be.conv2d_direct_backward_weight(dy, x, g) if need_dw else None
    else:
        dx = be.conv2d_im2col_backward_data(dy, weight, g, chunk) if need_dx else None
        dw = be.conv2d_im2col_backward_weight(dy, x, g, chunk) if need_dw else None
    if need_db:
        db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


# ---- "gemm": 1x1, stride 1, no padding --------------------------------------------------------------
def _gemm_forward(be, x, weight, bias, g: ConvGeometry):
    cg, kg = g.c_in // g.groups, g.c_out // g.groups
    hw = g.h * g.w
    xs = x.reshape(g.n, g.c_in, hw)
    w2 = weight.reshape(g.c_out, cg)
    y = be.empty((g.n, g.c_out, hw), x.dtype)
    # One 2-D GEMM per image and group, written in place: 2-D so that cuBLAS honours CUPY_TF32.
    for n in range(g.n):
        for grp in range(g.groups):
            be.matmul(w2[grp * kg:(grp + 1) * kg], xs[n, grp * cg:(grp + 1) * cg], out=y[n, grp * kg:(grp + 1) * kg])
    if bias is not None:
        y += bias.reshape(1, g.c_out, 1)
    return y.reshape((g.n, g.c_out) + g.out_size)


def _gemm_backward(be, dy, x, weight, g: ConvGeometry, need_dx: bool, need_dw: bool):
    cg, kg = g.c_in // g.groups, g.c_out // g.groups
    hw = g.h * g.w
    xs, dys = x.reshape(g.n, g.c_in, hw), dy.reshape(g.n, g.c_out, hw)
    w2 = weight.reshape(g.c_out, cg)
    dx = be.empty((g.n, g.c_in, hw), x.dtype) if need_dx else None
    dw = be.zeros((g.c_out, cg), x.dtype) if need_dw else None
    for grp in range(g.groups):
        ci, co = slice(grp * cg, (grp + 1) * cg), slice(grp * kg, (grp + 1) * kg)
        for n in range(g.n):
            if need_dx:
                be.matmul(w2[co].T, dys[n, co], out=dx[n, ci])
            if need_dw:
                dw[co] += be.matmul(dys[n, co], xs[n, ci].T)
    return (dx.reshape(x.shape) if need_dx else None), (dw.reshape(weight.shape) if need_dw else None)


__all__ = ["ALGOS", "ConvGeometry", "DEFAULT_WORKSPACE_LIMIT", "choose_algo", "conv2d", "conv2d_backward",
           "conv2d_workspace_bytes", "conv_geometry", "get_workspace_limit", "set_workspace_limit"]
