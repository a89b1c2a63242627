"""pad and pad_backward: PyTorch's ``F.pad`` (constant, reflect, replicate, circular).

``pad`` lists (before, after) pairs from the last dimension backwards, as in PyTorch:
``(left, right)`` pads W, ``(left, right, top, bottom)`` pads W and H, and so on. Written with the
backend's array module (slices and concatenation), so it runs unchanged on every backend.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ._args import check_array, int_arg
from ._common import check_real
from ._dispatch import recorded

MODES = ("constant", "reflect", "replicate", "circular")


def _check_pad(pad: Any, ndim: int, mode: str) -> list[tuple[int, int]]:
    """[(before, after)] per padded axis, last axis first; checks what PyTorch checks."""
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad must be a tuple of ints, got {pad!r}")
    values = [int_arg(v, f"pad[{i}]") for i, v in enumerate(pad)]
    if len(values) % 2:
        raise ValueError(f"pad must have an even number of entries ((before, after) per dimension), got {len(values)}")
    pairs = list(zip(values[0::2], values[1::2]))
    if len(pairs) > ndim:
        raise ValueError(f"pad has {len(pairs)} (before, after) pairs but the input has only {ndim} dimensions")
    if mode != "constant":
        if not 1 <= len(pairs) <= 3 or ndim not in (len(pairs) + 1, len(pairs) + 2):
            raise ValueError(f"mode={mode!r} pads the last 1, 2 or 3 dimensions of a batched or unbatched input: "
                             f"{len(pairs)} pairs need a {len(pairs) + 1}-D or {len(pairs) + 2}-D input, got {ndim}-D")
        if min(values) < 0:
            raise ValueError(f"mode={mode!r} needs non-negative padding, got pad={tuple(values)}")
    return pairs


def _axis_ranges(shape: tuple[int, ...], pairs: list[tuple[int, int]], mode: str) -> None:
    """ValueError when a padding needs more of the input than there is (PyTorch's limits)."""
    for index, (before, after) in enumerate(pairs):
        axis = len(shape) - 1 - index
        size = shape[axis]
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"mode='reflect': padding ({before}, {after}) of dimension {axis} must be smaller than "
                             f"its size {size}")
        if mode == "circular" and max(before, after) > size:
            raise ValueError(f"mode='circular': padding ({before}, {after}) of dimension {axis} must be at most "
                             f"its size {size}")
        if mode == "replicate" and size == 0 and before + after > 0:
            raise ValueError(f"mode='replicate' cannot pad dimension {axis} of size 0")
        if mode == "constant" and size + before + after < 0:
            raise ValueError(f"pad ({before}, {after}) of dimension {axis} (size {size}) gives a negative size")


def _take(x: Any, axis: int, start: int, stop: int) -> Any:
    """x[start:stop] along ``axis`` (0 <= start <= stop)."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def pad(x: Any, pad: Any, mode: str = "constant", value: float = 0.0) -> Any:
    """PyTorch's ``F.pad``.

    Args:
        x: an array of the current backend (any dtype).
        pad: (before, after) pairs from the last dimension backwards, e.g. (left, right, top,
            bottom) for (N, C, H, W). ``"constant"`` pads any number of dimensions and takes
            negative entries (they crop); the other modes pad the last 1-3 dimensions of an input
            with one or two leading dimensions more, by non-negative amounts.
        mode: ``"constant"`` (``value``), ``"reflect"`` (mirror without repeating the edge; each
            padding smaller than the dimension), ``"replicate"`` (repeat the edge), ``"circular"``
            (wrap around; each padding at most the dimension).
        value: the fill of ``"constant"``.
    Returns:
        The padded array, each padded dimension of size ``size + before + after``; x's dtype.
    """
    be = get_backend()
    be.check_native("x", x)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    pairs = _check_pad(pad, x.ndim, mode)
    value = check_real(value, "value")
    if mode != "constant" and value != 0.0:
        raise ValueError(f"value applies to mode='constant' only, got value={value!r} with mode={mode!r}")
    _axis_ranges(tuple(x.shape), pairs, mode)
    xp = be.xp
    out = x
    for index, (before, after) in enumerate(pairs):
        axis = x.ndim - 1 - index
        out = _pad_axis(xp, out, axis, before, after, mode, value)
    return out if out is not x else x.copy()


def _pad_axis(xp, x: Any, axis: int, before: int, after: int, mode: str, value: float) -> Any:
    size = x.shape[axis]
    if mode == "constant":
        x = _take(x, axis, max(-before, 0), size - max(-after, 0))  # negative pads crop
        before, after = max(before, 0), max(after, 0)
        shape = list(x.shape)
        shape[axis] += before + after
        out = xp.full(shape, value, dtype=x.dtype)
        index = [slice(None)] * x.ndim
        index[axis] = slice(before, before + x.shape[axis])
        out[tuple(index)] = x
        return out
    if mode == "reflect":
        left = xp.flip(_take(x, axis, 1, before + 1), axis=axis)                  # x[before], ..., x[1]
        right = xp.flip(_take(x, axis, size - 1 - after, size - 1), axis=axis)    # x[size-2], ..., x[size-1-after]
    elif mode == "replicate":
        left = xp.repeat(_take(x, axis, 0, 1), before, axis=axis)
        right = xp.repeat(_take(x, axis, size - 1, size), after, axis=axis)
    else:  # circular
        left = _take(x, axis, size - before, size)
        right = _take(x, axis, 0, after)
    return xp.concatenate([left, x, right], axis=axis)


def pad_backward(dy: Any, pad: Any, mode: str = "constant") -> Any:
    """The gradient of :func:`pad` with respect to its input: each input element's gradient is the
    sum of ``dy`` over the output elements that copied it.

    Args:
        dy: (float32 or float64) the gradient of pad's output.
        pad, mode: as given to :func:`pad` (``value`` has no gradient to the input).
    Returns:
        dx of the input's shape (each padded dimension ``size - before - after``); entries that a
        negative constant pad cropped get 0.
    """
    be = get_backend()
    check_array(dy, "dy")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    pairs = _check_pad(pad, dy.ndim, mode)
    for index, (before, after) in enumerate(pairs):
        axis = dy.ndim - 1 - index
        if dy.shape[axis] - before - after < (1 if mode != "constant" else 0):
            raise ValueError(f"dy's dimension {axis} (size {dy.shape[axis]}) is smaller than its padding "
                             f"({before}, {after})")
    xp = be.xp
    dx = dy
    for index, (before, after) in enumerate(pairs):
        axis = dy.ndim - 1 - index
        dx = _unpad_axis(xp, dx, axis, before, after, mode)
    return dx if dx is not dy else dy.copy()


def _unpad_axis(xp, dy: Any, axis: int, before: int, after: int, mode: str) -> Any:
    out_size = dy.shape[axis]
    size = out_size - before - after
    if mode == "constant":
        inner = _take(dy, axis, max(before, 0), out_size - max(after, 0))
        if before >= 0 and after >= 0:
            return inner.copy()
        shape = list(inner.shape)  # cropped entries (negative pads) had no output: gradient 0
        shape[axis] = size
        dx = xp.zeros(shape, dtype=dy.dtype)
        index = [slice(None)] * dy.ndim
        index[axis] = slice(max(-before, 0), size - max(-after, 0))
        dx[tuple(index)] = inner
        return dx
    dx = _take(dy, axis, before, before + size).copy()
    left, right = _take(dy, axis, 0, before), _take(dy, axis, before + size, out_size)
    if mode == "reflect":
        _add_slice(dx, axis, 1, before + 1, xp.flip(left, axis=axis))
        _add_slice(dx, axis, size - 1 - after, size - 1, xp.flip(right, axis=axis))
    elif mode == "replicate":
        _add_slice(dx, axis, 0, 1, left.sum(axis=axis, keepdims=True))
        _add_slice(dx, axis, size - 1, size, right.sum(axis=axis, keepdims=True))
    else:  # circular
        _add_slice(dx, axis, size - before, size, left)
        _add_slice(dx, axis, 0, after, right)
    return dx


def _add_slice(dx: Any, axis: int, start: int, stop: int, values: Any) -> None:
    index = [slice(None)] * dx.ndim
    index[axis] = slice(start, stop)
    dx[tuple(index)] += values


__all__ = ["pad", "pad_backward"]
recorded("pad")
