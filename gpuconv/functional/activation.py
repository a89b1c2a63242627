"""Activations and softmax, forward and backward: ReLU, leaky ReLU and softmax / log-softmax on the
backend's kernels, sigmoid and tanh as array expressions on the backend's array module.

Backward functions take what PyTorch's autograd saves: ``x`` for relu / leaky_relu, the forward's
output ``y`` for sigmoid, tanh, softmax and log_softmax.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..backend import get_backend
from ._args import check_array, same_dtype
from ._common import check_dim, check_real, check_same_shape
from ._memory import capabilities, check_request, nbytes, numpy_buffer_bytes
from ._dispatch import autograd_form, recorded


class ActivationPrimitives(Protocol):
    """The activation primitives of the backend contract (gpuconv/backend/base.py); inputs are
    C-contiguous float32/float64 arrays, results new arrays of the same shape and dtype."""

    def relu(self, x: Any) -> Any:
        """max(x, 0), NaN propagated."""

    def relu_backward(self, dy: Any, x: Any) -> Any:
        """dy where x > 0, else 0."""

    def leaky_relu(self, x: Any, negative_slope: float) -> Any:
        """x where x > 0, else negative_slope * x."""

    def leaky_relu_backward(self, dy: Any, x: Any, negative_slope: float) -> Any:
        """dy where x > 0, else negative_slope * dy."""

    def softmax(self, x: Any, axis: int, log: bool = False) -> Any:
        """(log-)softmax along ``axis``, the maximum subtracted first."""

    def softmax_backward(self, dy: Any, y: Any, axis: int, log: bool = False) -> Any:
        """dx from dy and the forward's output y."""


def _contiguous(*arrays):
    xp = get_backend().xp
    return tuple(xp.ascontiguousarray(a) for a in arrays)


def relu(x: Any) -> Any:
    """max(x, 0) elementwise (NaN stays NaN). Any shape; same shape and dtype out. One kernel on
    the cupy and emulated backends."""
    check_array(x, "x")
    check_request("relu", nbytes(x.shape, x.dtype), "the result")
    return get_backend().relu(*_contiguous(x))


def relu_backward(dy: Any, x: Any) -> Any:
    """dx = dy where x > 0, else 0. ``x`` is the forward's input (or its output: same sign)."""
    check_array(x, "x")
    check_array(dy, "dy")
    check_same_shape("x", x, "dy", dy)
    same_dtype("x", x, dy=dy)
    check_request("relu_backward", nbytes(x.shape, x.dtype), "the result")
    return get_backend().relu_backward(*_contiguous(dy, x))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """x where x > 0, else negative_slope * x. Any shape."""
    check_array(x, "x")
    slope = check_real(negative_slope, "negative_slope")
    check_request("leaky_relu", nbytes(x.shape, x.dtype), "the result")
    return get_backend().leaky_relu(*_contiguous(x), slope)


def leaky_relu_backward(dy: Any, x: Any, negative_slope: float = 0.01) -> Any:
    """dx = dy where x > 0, else negative_slope * dy."""
    check_array(x, "x")
    check_array(dy, "dy")
    check_same_shape("x", x, "dy", dy)
    same_dtype("x", x, dy=dy)
    slope = check_real(negative_slope, "negative_slope")
    check_request("leaky_relu_backward", nbytes(x.shape, x.dtype), "the result")
    return get_backend().leaky_relu_backward(*_contiguous(dy, x), slope)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed without overflow for large |x|. Any shape."""
    check_array(x, "x")
    check_request("sigmoid", nbytes(x.shape, x.dtype), "the result")
    xp = get_backend().xp
    # NOTE: exp(-|x|) never overflows; the two branches are the same function rearranged.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(dy: Any, y: Any) -> Any:
    """dx = dy * y * (1 - y), where ``y`` is the forward's output."""
    check_array(y, "y")
    check_same_shape("y", y, "dy", dy)
    check_request("sigmoid_backward", nbytes(y.shape, y.dtype), "the result")
    return dy * y * (1 - y)


def tanh(x: Any) -> Any:
    """tanh(x) elementwise. Any shape."""
    check_array(x, "x")
    check_request("tanh", nbytes(x.shape, x.dtype), "the result")
    return get_backend().xp.tanh(x)


def tanh_backward(dy: Any, y: Any) -> Any:
    """dx = dy * (1 - y^2), where ``y`` is the forward's output."""
    check_array(y, "y")
    check_same_shape("y", y, "dy", dy)
    check_request("tanh_backward", nbytes(y.shape, y.dtype), "the result")
    return dy * (1 - y * y)


def softmax(x: Any, dim: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``dim``, with the maximum subtracted first so exp never overflows."""
    check_array(x, "x")
    axis = check_dim(dim, x.ndim)
    check_request("softmax", nbytes(x.shape, x.dtype), "the result")
    return get_backend().softmax(x, axis)


def softmax_backward(dy: Any, y: Any, dim: int = -1) -> Any:
    """dx = y * (dy - sum(dy * y, dim)), where ``y`` is the forward's output."""
    check_array(y, "y")
    check_same_shape("y", y, "dy", dy)
    axis = check_dim(dim, y.ndim)
    check_request("softmax_backward", nbytes(y.shape, y.dtype), "the result")
    return get_backend().softmax_backward(dy, y, axis)


def log_softmax(x: Any, dim: int = -1) -> Any:
    """x - log(sum(exp(x))) along ``dim``, computed as z - log(sum(exp(z))) with z = x - max(x)."""
    check_array(x, "x")
    axis = check_dim(dim, x.ndim)
    check_request("log_softmax", nbytes(x.shape, x.dtype), "the result")
    return get_backend().softmax(x, axis, log=True)


def log_softmax_backward(dy: Any, y: Any, dim: int = -1) -> Any:
    """dx = dy - exp(y) * sum(dy, dim), where ``y`` is the forward's output."""
    check_array(y, "y")
    check_same_shape("y", y, "dy", dy)
    axis = check_dim(dim, y.ndim)
    check_request("log_softmax_backward", nbytes(y.shape, y.dtype), "the result")
    return get_backend().softmax_backward(dy, y, axis, log=True)


def relu_transient_bytes(x_shape: tuple[int, ...], dtype: Any, direction: str, backend: Any = "numpy") -> int:
    """Bytes :func:`relu` (``direction="forward"``) or :func:`relu_backward` (``"backward"``)
    allocates besides its result. Kernel backends (cupy, emulated): nothing, one kernel writes the
    result. numpy: the backward's boolean mask ``x > 0`` (1 byte per element) lives while the product
    is computed, and NumPy casts it to the float type through an iterator buffer of up to
    ``np.getbufsize()`` elements. The forward allocates nothing else."""
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if direction == "forward" or capabilities(backend).kernels:
        return 0
    elements = _numel(x_shape)
    return elements + numpy_buffer_bytes(elements, np.dtype(dtype).itemsize)


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


__all__ = ["leaky_relu", "leaky_relu_backward", "log_softmax", "log_softmax_backward", "relu", "relu_backward", "sigmoid",
           "sigmoid_backward", "softmax", "softmax_backward", "tanh", "tanh_backward"]
recorded("leaky_relu", "relu")
autograd_form(sigmoid, sigmoid_backward, saves=("output",), label="SigmoidBackward")
autograd_form(tanh, tanh_backward, saves=("output",), label="TanhBackward")
autograd_form(softmax, softmax_backward, saves=("output",), label="SoftmaxBackward")
autograd_form(log_softmax, log_softmax_backward, saves=("output",), label="LogSoftmaxBackward")
