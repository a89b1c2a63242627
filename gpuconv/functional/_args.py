"""Argument checks and shape arithmetic shared by the functional ops.

Every check raises before any kernel runs, with a message naming the argument and the expected
and actual values.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..backend import get_backend
from ..backend.base import SUPPORTED_DTYPES


# The kernels take sizes, strides, paddings and dilations as 32-bit ints: every backend refuses
# larger values up front, so that one rule holds everywhere (NumPy could compute some of them).
INT32_MAX = 2**31 - 1


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_arg(value: Any, name: str) -> int:
    """``value`` as a Python int; TypeError naming ``name`` for a float, bool or anything else."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    return int(value)


def check_int32(values: tuple[int, ...], name: str) -> None:
    """ValueError when an entry of ``values`` exceeds what the kernels' 32-bit int parameters hold."""
    if any(abs(v) > INT32_MAX for v in values):
        raise ValueError(f"{name} must be at most {INT32_MAX} (the kernels take 32-bit ints), got "
                         f"{values if len(values) > 1 else values[0]}")


def check_window_extent(size_hw, kernel, stride, pad_total, dilation, out, what: str) -> None:
    """ValueError when the positions a sliding window's kernel computes (the padded input, the
    furthest tap) do not fit the kernels' 32-bit ints; the same rule on every backend."""
    for axis, (size, k, s, p, d, o) in enumerate(zip(size_hw, kernel, stride, pad_total, dilation, out)):
        reach = max(size + p, (o - 1) * s + (k - 1) * d + 1)
        if reach > INT32_MAX:
            raise ValueError(f"{what}: along {'HW'[axis]} the windows reach position {reach} (input {size}, "
                             f"padding {p} in total, kernel {k}, stride {s}, dilation {d}), more than the kernels' "
                             f"32-bit ints hold ({INT32_MAX})")


def shape_arg(shape: Any, name: str, ndim: int | None = None, *, positive: bool = True) -> tuple[int, ...]:
    """A shape given by the user (tuple/list of ints, NumPy integers accepted) as a tuple of Python ints.

    Raises:
        TypeError naming ``name`` when it is not a sequence of ints (floats and bools included);
        ValueError when it has another length than ``ndim`` or a size below 1 (below 0 when not
        ``positive``).
    """
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}")
    for i, v in enumerate(shape):
        if not is_int(v):
            raise TypeError(f"{name}[{i}] must be an int, got {v!r} ({type(v).__name__}) in {name}={tuple(shape)!r}")
    result = tuple(int(v) for v in shape)
    if ndim is not None and len(result) != ndim:
        raise ValueError(f"{name} must be a {ndim}-D shape, got {result}")
    low = 1 if positive else 0
    if result and min(result) < low:
        raise ValueError(f"{name} must have sizes >= {low}, got {result}")
    return result


def pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of Python ints (at most INT32_MAX in magnitude)."""
    if is_int(value):
        result = int(value), int(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        result = int(value[0]), int(value[1])
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    check_int32(result, name)
    return result


def positive_pair(value: Any, name: str) -> tuple[int, int]:
    result = pair(value, name)
    if min(result) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return result


def non_negative_pair(value: Any, name: str) -> tuple[int, int]:
    result = pair(value, name)
    if min(result) < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return result


def check_array(x: Any, name: str, ndim: int | tuple[int, ...] | None = None, layout: str = "") -> Any:
    """Checks that ``x`` is an array of the current backend with a supported float dtype."""
    get_backend().check_native(name, x)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            expected = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {expected}{' ' + layout if layout else ''}, got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    return x


def check_spatial(x_shape: tuple[int, ...], name: str) -> None:
    """ValueError when an (N, C, H, W) shape has an empty plane (H or W is 0): pooling over it has
    no defined value."""
    if min(x_shape[2:]) < 1:
        raise ValueError(f"{name} must have non-empty spatial dimensions (H, W >= 1), got shape {tuple(x_shape)}")


def same_dtype(reference_name: str, reference: Any, **others: Any) -> None:
    for name, value in others.items():
        if value is not None and value.dtype != reference.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but {reference_name} has dtype {reference.dtype}; "
                            "they must match")


def out_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int, ceil_mode: bool = False) -> int:
    """Sliding-window output length (PyTorch's formula)."""
    span = size + pad_total - dilation * (kernel - 1) - 1
    if ceil_mode:
        return -(-span // stride) + 1 if span >= 0 else 0
    return span // stride + 1 if span >= 0 else 0


def window_out_size(h: int, w: int, kernel_size, stride, padding, dilation, what: str) -> tuple[int, int]:
    """(OH, OW) for symmetric padding; ValueError when the kernel does not fit the padded input."""
    oh = out_size(h, kernel_size[0], stride[0], 2 * padding[0], dilation[0])
    ow = out_size(w, kernel_size[1], stride[1], 2 * padding[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{what}: kernel_size {tuple(kernel_size)} with dilation {tuple(dilation)} is larger than the padded input "
            f"({h + 2 * padding[0]}x{w + 2 * padding[1]} from input {h}x{w} and padding {tuple(padding)})")
    check_window_extent((h, w), kernel_size, stride, (2 * padding[0], 2 * padding[1]), dilation, (oh, ow), what)
    return oh, ow


def is_float_dtype(dtype: Any) -> bool:
    return np.dtype(dtype) in SUPPORTED_DTYPES
