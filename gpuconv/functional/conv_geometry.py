"""Shape arithmetic of a 2-D convolution: argument checks and the :class:`ConvGeometry` they give."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._args import check_window_extent, int_arg, non_negative_pair, out_size, positive_pair, shape_arg


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


# Geometries already checked, by their arguments: a network calls each layer with the same shapes
# every step, and the checks below cost more host time than launching the kernels (issue 9's budget
# is 30 us per conv2d call). Bounded: cleared when full.
_CHECKED: dict[tuple, ConvGeometry] = {}
_CHECKED_LIMIT = 4096


def _is_plain(value: Any) -> bool:
    """An exact Python int or str, or a tuple of them (nested). Only such arguments are cached: a
    NumPy integer, a float or a bool must meet the checks each time (``True == 1`` would otherwise
    find the geometry cached for ``1``), and a list is not hashable."""
    kind = type(value)
    if kind is tuple:
        return all(map(_is_plain, value))
    return kind is int or kind is str


def conv_geometry(x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1) -> ConvGeometry:
    """Checks the shapes and arguments of a convolution and returns its :class:`ConvGeometry`
    (remembered for plain arguments, so a repeated call costs a dictionary lookup)."""
    key = (x_shape, weight_shape, stride, padding, dilation, groups)
    if not _is_plain(key):
        return _checked_geometry(*key)
    g = _CHECKED.get(key)
    if g is None:
        g = _checked_geometry(*key)
        if len(_CHECKED) >= _CHECKED_LIMIT:
            _CHECKED.clear()
        _CHECKED[key] = g
    return g


def _checked_geometry(x_shape, weight_shape, stride, padding, dilation, groups) -> ConvGeometry:
    x_shape = shape_arg(x_shape, "x_shape", positive=False)
    weight_shape = shape_arg(weight_shape, "weight_shape", positive=False)
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {x_shape}")
    if len(weight_shape) != 4:
        raise ValueError(f"weight must be 4-D (C_out, C_in/groups, KH, KW), got shape {weight_shape}")
    if int_arg(groups, "groups") < 1:
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
    check_window_extent((h, w), (kh, kw), stride, (pads[0] + pads[1], pads[2] + pads[3]), dilation, (oh, ow),
                        "conv2d")
    return ConvGeometry(n, c_in, h, w, c_out, (kh, kw), stride, pads, dilation, int(groups), (oh, ow))
