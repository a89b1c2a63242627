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


def pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of Python ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


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
    return oh, ow


def is_float_dtype(dtype: Any) -> bool:
    return np.dtype(dtype) in SUPPORTED_DTYPES
