"""Transposed 2-D convolution, PyTorch's ``F.conv_transpose2d``, forward and backward, through conv2d's
own algorithms.

A transposed convolution is the adjoint of a convolution: with the conv2d that maps an image of the
transposed output's shape Y (N, C_out, OH, OW) to the transposed input's shape X (N, C_in, H, W)
using ``weight`` (C_in, C_out/groups, KH, KW) as its (C_out', C_in'/groups, KH, KW) weight,

- forward:  Y  = conv2d's backward-data of X       (:func:`conv2d_backward`, needs dx only);
- backward: dX = conv2d(dY, weight);
            dweight = conv2d's backward-weight with input dY and output gradient X;
            dbias = dY summed over N, OH, OW.

So every registered conv2d algorithm (gpuconv.functional.conv_algos) serves the transposed
convolution as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_backend
from ._args import check_array, int_arg, non_negative_pair, positive_pair, same_dtype, shape_arg
from ._memory import check_request, nbytes
from .conv import conv2d, conv2d_backward, conv2d_workspace_bytes
from ._dispatch import recorded


def conv_transpose2d_output_shape(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride=1, padding=0,
                                  output_padding=0, groups: int = 1, dilation=1) -> tuple[int, int, int, int]:
    """(N, C_out, OH, OW) with OH = (H - 1) * stride - 2 * padding + dilation * (KH - 1) + output_padding + 1.

    Raises:
        ValueError for inconsistent shapes, an output_padding not smaller than stride or
        dilation, or an empty output.
    """
    x_shape, weight_shape = shape_arg(x_shape, "x_shape"), shape_arg(weight_shape, "weight_shape")
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C_in, H, W), got shape {x_shape}")
    if len(weight_shape) != 4:
        raise ValueError(f"weight must be 4-D (C_in, C_out/groups, KH, KW), got shape {weight_shape}")
    if int_arg(groups, "groups") < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    stride, dilation = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    padding, output_padding = non_negative_pair(padding, "padding"), non_negative_pair(output_padding, "output_padding")
    n, c_in, h, w = x_shape
    if weight_shape[0] != c_in:
        raise ValueError(f"x has {c_in} channels but weight (C_in, C_out/groups, KH, KW) = {weight_shape} expects "
                         f"{weight_shape[0]}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    for k in range(2):
        # NOTE: PyTorch also accepts stride <= output_padding < dilation; those outputs are not the
        # adjoint of a conv2d of the same arguments, so gpuconv does not.
        if output_padding[k] >= stride[k]:
            raise ValueError(f"output_padding {output_padding} must be smaller than stride {stride} in each "
                             "dimension")
    out = tuple((size - 1) * stride[k] - 2 * padding[k] + dilation[k] * (weight_shape[2 + k] - 1)
                + output_padding[k] + 1 for k, size in enumerate((h, w)))
    if min(out) < 1:
        raise ValueError(f"the output of conv_transpose2d would be empty ({out[0]}x{out[1]}) for input {h}x{w}, "
                         f"kernel {weight_shape[2:]}, stride {stride}, padding {padding}, dilation {dilation}")
    return (n, weight_shape[1] * groups) + out


def _check(x, weight, bias, stride, padding, output_padding, groups, dilation):
    check_array(x, "x", 4, "(N, C_in, H, W)")
    check_array(weight, "weight", 4, "(C_in, C_out/groups, KH, KW)")
    same_dtype("x", x, weight=weight)
    shape = conv_transpose2d_output_shape(x.shape, weight.shape, stride, padding, output_padding, groups, dilation)
    if bias is not None:
        check_array(bias, "bias", 1, "(C_out,)")
        same_dtype("x", x, bias=bias)
        if bias.shape[0] != shape[1]:
            raise ValueError(f"bias must have C_out = {shape[1]} elements, got shape {tuple(bias.shape)}")
    return shape


def conv_transpose2d(x: Any, weight: Any, bias: Any = None, stride=1, padding=0, output_padding=0, groups: int = 1,
                     dilation=1, *, algo: str = "auto") -> Any:
    """Transposed convolution ("deconvolution"), PyTorch's ``conv_transpose2d`` (same argument order).

    Args:
        x: (N, C_in, H, W).
        weight: (C_in, C_out/groups, KH, KW); bias: (C_out,) or None.
        stride, padding, output_padding, groups, dilation: as PyTorch (``padding`` crops that
            many rows and columns from each border of the full output; ``output_padding`` adds
            rows and columns at the bottom and right, to pick among the sizes that a strided conv
            maps to H; it must be smaller than the stride).
        algo: the conv2d algorithm: ``"auto"`` or a registered one's name (``conv_algos.names()``).
    Returns:
        (N, C_out, OH, OW), see :func:`conv_transpose2d_output_shape`.
    """
    shape = _check(x, weight, bias, stride, padding, output_padding, groups, dilation)
    check_request("conv_transpose2d", 2 * nbytes(shape, x.dtype), "the result and a placeholder of its shape")
    be = get_backend()
    # conv2d_backward reads only the shape of its x when just dx is needed; an uninitialized array
    # of the output's shape stands in for it (NOTE: counted in conv_transpose2d_workspace_bytes).
    placeholder = be.xp.empty(shape, dtype=x.dtype)
    y, _, _ = conv2d_backward(x, placeholder, weight, stride, padding, dilation, groups, algo=algo,
                              needs=(True, False, False))
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward(dy: Any, x: Any, weight: Any, stride=1, padding=0, output_padding=0, groups: int = 1,
                              dilation=1, *, algo: str = "auto", needs=(True, True, True)) -> tuple[Any, Any, Any]:
    """Gradients of :func:`conv_transpose2d`.

    Args:
        dy: (N, C_out, OH, OW); x, weight and the rest as given to the forward.
        needs: which of (dx, dweight, dbias) to compute.
    Returns:
        (dx (N, C_in, H, W), dweight (C_in, C_out/groups, KH, KW), dbias (C_out,)); None for the
        entries not needed.
    """
    shape = _check(x, weight, None, stride, padding, output_padding, groups, dilation)
    check_array(dy, "dy", 4, "(N, C_out, OH, OW)")
    same_dtype("x", x, dy=dy)
    if tuple(dy.shape) != shape:
        raise ValueError(f"dy must have the conv_transpose2d output shape {shape}, got {tuple(dy.shape)}")
    if not (isinstance(needs, (tuple, list)) and len(needs) == 3):
        raise ValueError(f"needs must be a tuple of 3 bools (dx, dweight, dbias), got {needs!r}")
    need_dx, need_dw, need_db = (bool(v) for v in needs)
    dx = conv2d(dy, weight, None, stride, padding, dilation, groups, algo=algo) if need_dx else None
    dw = None
    if need_dw:
        _, dw, _ = conv2d_backward(x, dy, weight, stride, padding, dilation, groups, algo=algo,
                                   needs=(False, True, False))
    db = dy.sum(axis=(0, 2, 3)) if need_db else None
    return dx, dw, db


def conv_transpose2d_workspace_bytes(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], dtype: Any, stride=1,
                                     padding=0, output_padding=0, groups: int = 1, dilation=1,
                                     algo: str = "auto") -> int:
    """Temporary bytes of forward or backward: the conv2d workspace (of the conv whose input has
    the transposed output's shape) plus, in forward, the placeholder of the output's shape."""
    shape = conv_transpose2d_output_shape(x_shape, weight_shape, stride, padding, output_padding, groups, dilation)
    conv_ws = conv2d_workspace_bytes(shape, weight_shape, dtype, stride, padding, dilation, groups, algo=algo)
    return int(conv_ws + np.prod(shape, dtype=np.int64) * np.dtype(dtype).itemsize)


__all__ = ["conv_transpose2d", "conv_transpose2d_backward", "conv_transpose2d_output_shape",
           "conv_transpose2d_workspace_bytes"]
recorded("conv_transpose2d")
