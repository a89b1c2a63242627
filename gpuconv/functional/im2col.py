"""im2col and col2im (PyTorch's ``unfold`` and ``fold``), forward and backward.

``col2im`` is the adjoint of ``im2col`` (it sums the columns back onto the input positions they
came from), so each is the other's backward.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..backend import get_backend
from ._args import check_array, non_negative_pair, positive_pair, shape_arg, window_out_size
from ._memory import check_request, nbytes
from ._dispatch import recorded


class Im2colPrimitives(Protocol):
    """The im2col primitives of the backend contract (gpuconv/backend/base.py); windows are
    validated pairs, ``layout`` the column buffer's ("ckl": (N, C*kh*kw, L) or "lck")."""

    def im2col(self, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, out_size: Any,
               layout: Any) -> Any:
        """The column buffer of (N, C, H, W) ``x``."""

    def col2im(self, cols: Any, x_shape: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
               out_size: Any, layout: Any) -> Any:
        """The (N, C, H, W) image summing each column entry into the element it came from."""

LAYOUTS = ("nkl", "knl")


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be 'nkl' (N, C*KH*KW, L) or 'knl' (C*KH*KW, N*L), got {layout!r}")
    return layout


def _window_args(kernel_size, stride, padding, dilation):
    return (positive_pair(kernel_size, "kernel_size"), positive_pair(stride, "stride"),
            non_negative_pair(padding, "padding"), positive_pair(dilation, "dilation"))


def im2col(x: Any, kernel_size, stride=1, padding=0, dilation=1, *, layout: str = "nkl") -> Any:
    """Sliding windows of ``x`` as columns.

    Args:
        x: (N, C, H, W), float32 or float64.
        kernel_size, stride, padding, dilation: int or pair; padding is zero padding on both sides.
        layout: ``"nkl"`` gives (N, C*KH*KW, OH*OW), PyTorch's ``unfold``; ``"knl"`` gives
            (C*KH*KW, N*OH*OW), which turns a convolution of the whole batch into one 2-D GEMM.
    Returns:
        The columns; row ``(c*KH + i)*KW + j`` holds tap (i, j) of channel c.
    """
    return _im2col(x, kernel_size, stride, padding, dilation, layout, "x")


def _im2col(x: Any, kernel_size, stride, padding, dilation, layout: str, name: str) -> Any:
    """:func:`im2col`, naming the input ``name`` in its errors."""
    check_array(x, name, 4, "(N, C, H, W)")
    _check_layout(layout)
    k, s, p, d = _window_args(kernel_size, stride, padding, dilation)
    size = window_out_size(x.shape[2], x.shape[3], k, s, p, d, "im2col")
    # the same bytes in either layout: C*KH*KW rows of N*OH*OW windows
    check_request("unfold" if name == "input" else "im2col",
                  nbytes((x.shape[0], x.shape[1] * k[0] * k[1], size[0] * size[1]), x.dtype), "the columns")
    return get_backend().im2col(x, k, s, p, d, size, layout)


def col2im(cols: Any, output_size, kernel_size, stride=1, padding=0, dilation=1, *, layout: str = "nkl") -> Any:
    """Sums columns back into an image: the adjoint of :func:`im2col` (PyTorch's ``fold``).

    Args:
        cols: (N, C*KH*KW, L) for ``layout="nkl"``, (C*KH*KW, N*L) for ``"knl"``, where L = OH*OW is
            the number of windows that ``output_size`` and the window arguments give.
        output_size: (H, W) of the image.
    Returns:
        (N, C, H, W).
    """
    return _col2im(cols, output_size, kernel_size, stride, padding, dilation, layout, "cols")


def _col2im(cols: Any, output_size, kernel_size, stride, padding, dilation, layout: str, name: str) -> Any:
    """:func:`col2im`, naming the columns ``name`` in its errors."""
    check_array(cols, name, 3 if _check_layout(layout) == "nkl" else 2,
                "(N, C*KH*KW, L)" if layout == "nkl" else "(C*KH*KW, N*L)")
    h, w = positive_pair(output_size, "output_size")
    k, s, p, d = _window_args(kernel_size, stride, padding, dilation)
    oh, ow = window_out_size(h, w, k, s, p, d, "col2im")
    taps, l_size = k[0] * k[1], oh * ow
    rows = cols.shape[1] if layout == "nkl" else cols.shape[0]
    if rows % taps:
        raise ValueError(f"{name}: dimension {1 if layout == 'nkl' else 0} must be a multiple of "
                         f"kernel_size[0]*kernel_size[1] = {taps}, got {rows} (shape {tuple(cols.shape)})")
    if layout == "nkl":
        n, l_given = cols.shape[0], cols.shape[2]
    else:
        n, l_given = (cols.shape[1] // l_size if l_size else 0), cols.shape[1]
    if l_given != (l_size if layout == "nkl" else n * l_size) or (layout == "knl" and n == 0):
        expected = f"{l_size}" if layout == "nkl" else f"a positive multiple of {l_size}"
        raise ValueError(f"{name}: expected {expected} windows for output_size {(h, w)} (OH, OW = {oh}, {ow}), "
                         f"got shape {tuple(cols.shape)}")
    check_request("fold" if name == "input" else "col2im", nbytes((n, rows // taps, h, w), cols.dtype), "the image")
    return get_backend().col2im(cols, (n, rows // taps, h, w), k, s, p, d, (oh, ow), layout)


def unfold(input: Any, kernel_size, dilation=1, padding=0, stride=1) -> Any:
    """PyTorch's ``F.unfold``: (N, C, H, W) -> (N, C*KH*KW, L); a 3-D (C, H, W) input gives (C*KH*KW, L)."""
    if getattr(input, "ndim", None) == 3:
        return _im2col(input[None], kernel_size, stride, padding, dilation, "nkl", "input")[0]
    return _im2col(input, kernel_size, stride, padding, dilation, "nkl", "input")


def fold(input: Any, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Any:
    """PyTorch's ``F.fold``: (N, C*KH*KW, L) -> (N, C, H, W); a 2-D input gives (C, H, W)."""
    if getattr(input, "ndim", None) == 2:
        return _col2im(input[None], output_size, kernel_size, stride, padding, dilation, "nkl", "input")[0]
    return _col2im(input, output_size, kernel_size, stride, padding, dilation, "nkl", "input")


def im2col_backward(dcols: Any, x_shape, kernel_size, stride=1, padding=0, dilation=1, *, layout: str = "nkl") -> Any:
    """Gradient of :func:`im2col` with respect to ``x`` (of shape ``x_shape``): col2im of ``dcols``."""
    return col2im(dcols, shape_arg(x_shape, "x_shape", 4)[2:], kernel_size, stride, padding, dilation, layout=layout)


def col2im_backward(dx: Any, kernel_size, stride=1, padding=0, dilation=1, *, layout: str = "nkl") -> Any:
    """Gradient of :func:`col2im` with respect to the columns: im2col of ``dx``."""
    return im2col(dx, kernel_size, stride, padding, dilation, layout=layout)


__all__ = ["col2im", "col2im_backward", "fold", "im2col", "im2col_backward", "unfold"]
recorded("col2im", "fold", "im2col", "unfold")
