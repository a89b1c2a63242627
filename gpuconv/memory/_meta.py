"""The shape-only backend the estimator runs a training step on: every primitive of the backend
interface returns meta arrays of the right shapes and dtypes, computes nothing, and counts the
temporaries the target backend's own primitive allocates while it runs.

Two targets: ``numpy`` (the numpy backend's primitives, NumPy expressions) and the kernel backends
``emulated`` and ``cupy`` (the launchers of gpuconv/backend/cuda, which allocate their results
and the workspaces the conv algorithms' ``plan`` counts). Everything outside the primitives
(gpuconv.functional's array expressions, autograd, the optimizers' per-parameter NumPy code) runs as
it is, on meta arrays.

A primitive gets its temporaries one of two ways:

- a method here, for the primitives whose real code cannot run on shapes (it reads values or
  addresses, or uses NumPy functions meta arrays do not implement) or is faster to describe: their
  temporaries come from the ops' own ``*_transient_bytes`` formulas, checked against tracemalloc
  per op in tests/test_memory.py;
- for any other primitive of the target (a new op needs nothing here), the target's own code runs on
  meta arrays (:mod:`gpuconv.backend.shape_only`: the numpy backend's method, or the cupy/emulated
  launcher with its launches stubbed), so its results and temporaries are counted as that code
  allocates them. A primitive whose code cannot run on shapes raises NotImplementedError naming it
  and saying why (then it needs a method here).
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Any

import numpy as np

from ..backend import backend_class, capabilities_of, create
from ..backend.base import OPTIONAL_PROTOCOLS, Backend, Capabilities
from ..backend.meta_array import MetaArray, _ascontiguousarray, _matmul
from ..backend.shape_only import ShapeOnlyArrays, shape_only_primitive
from ..flags import DEFAULT_WORKSPACE_LIMIT
from ..functional._memory import numpy_buffer_bytes
from ..functional.activation import relu_transient_bytes
from ..functional.batchnorm import batch_norm_transient_bytes
from ..functional.conv_algo import plan
from ..functional.dropout import dropout_transient_bytes
from ..functional.loss import cross_entropy_transient_bytes
from ..functional.pool import adaptive_avg_pool2d_transient_bytes, max_pool2d_numpy_transient_bytes

TARGETS = ("numpy", "emulated", "cupy")


def _left_out(capabilities: Capabilities, name: str) -> bool:
    """Whether ``name`` belongs to an optional primitives Protocol whose flag ``capabilities`` has off."""
    return any(not getattr(capabilities, flag) and name in vars(protocol)
               for protocol, flag in OPTIONAL_PROTOCOLS.items())


def _new(shape: Any, dtype: Any) -> MetaArray:
    return MetaArray.new(shape, dtype)


class MetaBackend(ShapeOnlyArrays, Backend):
    """Shape-only primitives for ``target`` (see the module docstring); arrays are MetaArrays."""

    def __init__(self, target: str, ledger: Any) -> None:
        self.target = target
        # The target's flags, so the step takes the target's paths, except what this backend does
        # in its own way: dropout's mask is always a shape-only stand-in drawn "on the device" (a
        # host draw would allocate real uniforms), and no bias epilogue (only the bench calls it).
        self.capabilities = replace(capabilities_of(target), device_dropout=True, conv_bias_epilogue=False)
        self.kernels = self.capabilities.kernels
        self.ledger = ledger
        self.launch_bytes = self.capabilities.launch_host_bytes

    def conv_heuristic(self, g: Any, direction: str) -> str | None:
        """``auto``'s choice on the target: the numpy backend has its own measured rule."""
        return None if self.kernels else create(self.target).conv_heuristic(g, direction)

    # The convolutions' memory facts are the target's class-level facts (ConvMemoryPrimitives).
    def conv2d_im2col_workspace(self, g: Any, direction: str, itemsize: int, chunk: int) -> int:
        return backend_class(self.target).conv2d_im2col_workspace(g, direction, itemsize, chunk)

    def conv2d_gemm_workspace(self, g: Any, direction: str, itemsize: int) -> int:
        return backend_class(self.target).conv2d_gemm_workspace(g, direction, itemsize)

    def conv2d_direct_workspace(self, g: Any, direction: str, itemsize: int) -> int:
        return backend_class(self.target).conv2d_direct_workspace(g, direction, itemsize)

    def conv2d_implicit_gemm_workspace(self, g: Any, direction: str, itemsize: int) -> int:
        return backend_class(self.target).conv2d_implicit_gemm_workspace(g, direction, itemsize)

    def conv2d_implicit_gemm_unsupported_reason(self, g: Any) -> str | None:
        return backend_class(self.target).conv2d_implicit_gemm_unsupported_reason(g)

    def conv2d_im2col_transient_bytes(self, g: Any, direction: str, itemsize: int, chunk: int) -> int:
        return backend_class(self.target).conv2d_im2col_transient_bytes(g, direction, itemsize, chunk)

    def conv2d_direct_transient_bytes(self, g: Any, direction: str, itemsize: int) -> int:
        return backend_class(self.target).conv2d_direct_transient_bytes(g, direction, itemsize)

    def __getattr__(self, name: str) -> Any:
        """A primitive of the target without a method here: the target's own code on shapes (none
        of an optional Protocol this backend's capabilities leave out)."""
        target, capabilities = self.__dict__.get("target"), self.__dict__.get("capabilities")
        run = None if target is None or _left_out(capabilities, name) else shape_only_primitive(target, name)
        if run is None:
            raise AttributeError(f"the memory estimator's shape-only {target} backend has no primitive {name!r}")

        @functools.wraps(run)  # the target's signature, which the backend contract checks
        def primitive(*args: Any, **kwargs: Any) -> Any:
            ledger = self.ledger
            ledger.high = ledger.current
            try:
                out = run(*args, **kwargs)
            except (NotImplementedError, TypeError, AttributeError) as exc:
                raise NotImplementedError(
                    f"the memory estimate cannot run the {self.target} backend's primitive {name} on shapes: {exc}. "
                    f"It needs a method {name} in gpuconv/memory/_meta.py's MetaBackend that counts its "
                    "temporaries (gpuconv.memory.measure measures the step instead)") from exc
            # The primitive's own peak above what stays (its results): its temporaries.
            self._spike(ledger.high - ledger.current, name)
            return out
        return primitive

    def _spike(self, nbytes: int, what: str) -> None:
        """The temporaries of the primitive running now (every primitive reports once, 0 included:
        on the emulated backend its launches' Python objects come on top)."""
        self.ledger.spike(nbytes + self.launch_bytes, what)

    # ---- arrays (is_native, asarray, to_numpy, empty, zeros: ShapeOnlyArrays) -------------------------
    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        return _matmul(a, b, out=out)

    def contiguous(self, a):
        out = _ascontiguousarray(a)
        if out is not a:
            self._spike(0, "copy")
        return out

    # ---- arithmetic ----------------------------------------------------------------------------------
    def add(self, a, b):
        out = _new(a.shape, a.dtype)
        self._spike(0, "add")
        return out

    def add_(self, a, b):
        self._spike(0, "add_")
        return a

    def fill_(self, a, value):
        self._spike(0, "fill_")
        return a

    def bias_add_(self, y, bias):
        # numpy: y += bias broadcasts through one iterator buffer
        self._spike(0 if self.kernels else numpy_buffer_bytes(y.size, y.itemsize), "bias add")
        return y

    def sum_except_channel(self, x, axis: int = 1):
        out = _new((x.shape[axis],), x.dtype)
        self._spike(0, "sum")
        return out

    def copy_into(self, dst, src):
        self._spike(0, "copy")
        return dst

    def count_step(self, counter) -> None:
        self._spike(0, "count")

    # ---- elementwise ---------------------------------------------------------------------------------
    def relu(self, x):
        y = _new(x.shape, x.dtype)
        self._spike(relu_transient_bytes(x.shape, x.dtype, "forward", self.target), "relu")
        return y

    def relu_backward(self, dy, x):
        dx = _new(x.shape, x.dtype)
        self._spike(relu_transient_bytes(x.shape, x.dtype, "backward", self.target), "relu backward")
        return dx

    def _where_mask(self, x, what: str):
        out = _new(x.shape, x.dtype)
        # numpy: np.where(x > 0, a, b * slope): the mask and the product
        self._spike(0 if self.kernels else x.size * (1 + x.itemsize), what)
        return out

    def leaky_relu(self, x, negative_slope):
        return self._where_mask(x, "leaky_relu")

    def leaky_relu_backward(self, dy, x, negative_slope):
        return self._where_mask(x, "leaky_relu backward")

    def dropout_apply(self, x, mask, scale):
        y = _new(x.shape, x.dtype)
        self._spike(dropout_transient_bytes(x.shape, x.dtype, "backward", self.target), "dropout")
        return y

    def dropout_device(self, x, p, scale, seed_source):
        """Dropout's forward with gpuconv's default generator, (y, mask), on every target (the numpy
        backend draws host uniforms instead: dropout_transient_bytes counts them)."""
        y, mask = _new(x.shape, x.dtype), _new(x.shape, np.bool_)
        self._spike(dropout_transient_bytes(x.shape, x.dtype, "forward", self.target), "dropout")
        return y, mask

    # ---- softmax ---------------------------------------------------------------------------------------
    def softmax(self, x, axis: int, log: bool = False):
        if self.kernels:
            x = self.contiguous(x)
            y = _new(x.shape, x.dtype)
            self._spike(0, "softmax")
            return y
        y = _new(x.shape, x.dtype)
        # exp(x - max) (or x - max for log) next to the result, which the division (subtraction)
        # by the broadcast sums writes through one iterator buffer
        self._spike(x.nbytes + numpy_buffer_bytes(x.size, x.itemsize), "softmax")
        return y

    def softmax_backward(self, dy, y, axis: int, log: bool = False):
        if self.kernels:
            dy, y = self.contiguous(dy), self.contiguous(y)
            dx = _new(y.shape, y.dtype)
            self._spike(0, "softmax backward")
            return dx
        dx = _new(y.shape, y.dtype)
        # dy * y (freed after its sum) and dy - s (reused as the product from 256 KiB on); for log,
        # exp(y) * s stays next to dx.
        self._spike((y.nbytes if (log or y.nbytes < 256 * 1024) else 0) + numpy_buffer_bytes(y.size, y.itemsize),
                    "softmax backward")
        return dx

    # ---- batch norm -----------------------------------------------------------------------------------
    def batch_norm_train(self, x, eps, running_mean, running_var, momentum, weight, bias):
        c = (x.shape[1],)
        out = _new(x.shape, x.dtype), _new(c, x.dtype), _new(c, x.dtype)
        self._spike(batch_norm_transient_bytes(x.shape, x.dtype, "forward", self.target), "batch_norm")
        return out

    def batch_norm_affine(self, x, mean, src, src_is_var, weight, bias, eps):
        y = _new(x.shape, x.dtype)
        self._spike(batch_norm_transient_bytes(x.shape, x.dtype, "forward", self.target), "batch_norm")
        return y

    def batch_norm_backward(self, dy, x, mean, invstd, weight, training, need_dx, need_sums):
        c = (x.shape[1],)
        sums = (_new(c, x.dtype), _new(c, x.dtype)) if need_sums else None
        dx = _new(x.shape, x.dtype) if need_dx else None
        self._spike(batch_norm_transient_bytes(x.shape, x.dtype, "backward", self.target, need_dx),
                    "batch_norm backward")
        return dx, sums

    # ---- losses ----------------------------------------------------------------------------------------
    def first_bad_target(self, target, classes: int, ignore_index: int) -> int:
        return -1  # no values to check

    def cross_entropy(self, logits, target, weight, ignore_index: int, reduction: str, label_smoothing: float):
        out = _new(target.shape if reduction == "none" else (), logits.dtype)
        self._spike(cross_entropy_transient_bytes(logits.shape, logits.dtype, "forward", self.target),
                    "cross_entropy")
        return out

    def cross_entropy_backward(self, dloss, logits, target, weight, ignore_index: int, reduction: str,
                               label_smoothing: float):
        out = _new(logits.shape, logits.dtype)
        self._spike(cross_entropy_transient_bytes(logits.shape, logits.dtype, "backward", self.target),
                    "cross_entropy backward")
        return out

    def accumulate_loss(self, total, loss, scale: float) -> None:
        self._spike(0, "accumulate_loss")

    def count_correct(self, outputs, target, count) -> None:
        self._spike(0, "count_correct")

    # ---- pooling ---------------------------------------------------------------------------------------
    def max_pool2d(self, x, kernel_size, stride, padding, dilation, out_size, with_indices=True,
                   index_dtype=np.int64):
        n, c = x.shape[:2]
        shape = (n, c) + tuple(out_size)
        y = _new(shape, x.dtype)
        indices = _new(shape, index_dtype) if with_indices else None
        spike = 0 if self.kernels else max_pool2d_numpy_transient_bytes(
            tuple(x.shape), tuple(out_size), x.dtype, "forward", kernel_size, stride, padding, dilation,
            with_indices=with_indices, index_dtype=index_dtype)
        self._spike(spike, "max_pool2d")
        return y, indices

    def _gather_spike(self, outputs: int, x_shape, what: str) -> None:
        # numpy: np.bincount in float64 over int64 flat indices, then a cast
        self._spike(0 if self.kernels else outputs * 18 + math.prod(x_shape) * 8, what)

    def max_pool2d_backward(self, dy, indices, x_shape, kernel_size, stride, padding, dilation, check_indices=True):
        dx = _new(x_shape, dy.dtype)
        self._spike(0 if self.kernels else max_pool2d_numpy_transient_bytes(
            tuple(x_shape), tuple(dy.shape[2:]), dy.dtype, "backward", kernel_size, stride, padding, dilation,
            check_indices=check_indices), "max_pool2d backward")
        return dx, True

    def avg_pool2d(self, x, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
        y = _new(tuple(x.shape[:2]) + tuple(out_size), x.dtype)
        self._spike(0, "avg_pool2d")
        return y

    def avg_pool2d_backward(self, dy, x_shape, kernel_size, stride, padding, count_include_pad, divisor_override):
        dx = _new(x_shape, dy.dtype)
        # numpy: (dy / divisors) in float64, cast back, then scattered into dx
        self._spike(0 if self.kernels else max(dy.size * (8 + dy.itemsize) - dx.nbytes, dy.nbytes),
                    "avg_pool2d backward")
        return dx

    def adaptive_avg_pool2d(self, x, out_size):
        y = _new(tuple(x.shape[:2]) + tuple(out_size), x.dtype)
        self._spike(0, "adaptive_avg_pool2d")
        return y

    def adaptive_avg_pool2d_backward(self, dy, x_shape):
        dx = _new(x_shape, dy.dtype)
        self._spike(adaptive_avg_pool2d_transient_bytes(x_shape, dy.dtype, "backward", self.target),
                    "adaptive_avg_pool2d backward")
        return dx

    def adaptive_max_pool2d(self, x, out_size, index_dtype=np.int64):
        shape = tuple(x.shape[:2]) + tuple(out_size)
        y, indices = _new(shape, x.dtype), _new(shape, index_dtype)
        narrow = not self.kernels and np.dtype(index_dtype) != np.dtype(np.int64)
        self._spike(math.prod(shape) * 8 if narrow else 0, "adaptive_max_pool2d")
        return y, indices

    def adaptive_max_pool2d_backward(self, dy, indices, x_shape):
        dx = _new(x_shape, dy.dtype)
        self._gather_spike(dy.size, x_shape, "adaptive_max_pool2d backward")
        return dx, True

    def gem(self, x, p, eps, kernel_size, stride, out_size):
        y = _new(tuple(x.shape[:2]) + tuple(out_size), x.dtype)
        # numpy: max(x, eps), its ratio to the window maximum and that ratio ** p
        self._spike(0 if self.kernels else 3 * x.nbytes, "gem")
        return y

    def gem_backward(self, dy, x, p, eps, kernel_size, stride, need_dx, need_dp):
        dx = _new(x.shape, x.dtype) if need_dx else None
        dp = _new((1,), x.dtype) if need_dp else None
        self._spike(0 if self.kernels else 4 * x.nbytes, "gem backward")
        return dx, dp

    # ---- columns ---------------------------------------------------------------------------------------
    def im2col(self, x, kernel_size, stride, padding, dilation, out_size, layout, **kwargs):
        n, c = x.shape[:2]
        rows, l_size = c * kernel_size[0] * kernel_size[1], out_size[0] * out_size[1]
        cols = _new((n, rows, l_size) if layout == "nkl" else (rows, n * l_size), x.dtype)
        padded = self._padded_bytes(x.shape, x.itemsize, kernel_size, stride, padding, dilation, out_size)
        self._spike(0 if self.kernels else padded, "im2col")
        return cols

    @staticmethod
    def _padded_bytes(x_shape, itemsize, kernel_size, stride, padding, dilation, out_size) -> int:
        (kh, kw), (sh, sw), (pt, pl), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, out_size
        n, c, h, w = x_shape
        hp = max(h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
        wp = max(w + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
        return 0 if (hp, wp) == (h, w) else n * c * hp * wp * itemsize

    def col2im(self, cols, x_shape, kernel_size, stride, padding, dilation, out_size, layout, **kwargs):
        dx = _new(x_shape, cols.dtype)
        # numpy: the padded sum, cropped into dx
        padded = self._padded_bytes(x_shape, cols.itemsize, kernel_size, stride, padding, dilation, out_size)
        self._spike(0 if self.kernels else padded, "col2im")
        return dx

    # ---- convolution -------------------------------------------------------------------------------------
    def _conv(self, g, dtype, algo: str, direction: str, chunk: int | None, bias: bool):
        itemsize = np.dtype(dtype).itemsize
        if direction == "forward":
            shape = (g.n, g.c_out) + tuple(g.out_size)
            kh, kw = g.kernel_size
            self.ledger.count_flops(2 * math.prod(shape) * (g.c_in // g.groups) * kh * kw)
        elif direction == "backward_data":
            shape = (g.n, g.c_in, g.h, g.w)
        else:
            shape = (g.c_out, g.c_in // g.groups) + tuple(g.kernel_size)
        out = _new(shape, dtype)
        if self.kernels:
            # The column code allocates for the chunk it is given (the running algorithm's plan).
            workspace = (self.conv2d_im2col_transient_bytes(g, direction, itemsize, chunk) if chunk is not None
                         else plan(g, algo, direction, itemsize).workspace)
        elif algo == "gemm":
            workspace = numpy_buffer_bytes(out.size, itemsize) if bias else 0
        else:
            if chunk is None:  # the numpy implicit GEMM's whole batch, up to the default limit
                chunk = g.images_per_chunk(itemsize, DEFAULT_WORKSPACE_LIMIT)
            workspace = self.conv2d_im2col_transient_bytes(g, direction, itemsize, chunk)
            if bias:
                workspace += numpy_buffer_bytes(out.size, itemsize)
        self._spike(workspace, f"conv2d {algo} {direction.replace('_', ' ')}")
        return out

    def conv2d_im2col_forward(self, x, weight, bias, g, chunk):
        return self._conv(g, x.dtype, "im2col", "forward", chunk, bias is not None)

    def conv2d_im2col_backward_data(self, dy, weight, g, chunk):
        return self._conv(g, dy.dtype, "im2col", "backward_data", chunk, False)

    def conv2d_im2col_backward_weight(self, dy, x, g, chunk):
        return self._conv(g, x.dtype, "im2col", "backward_weight", chunk, False)

    def conv2d_gemm_forward(self, x, weight, bias, g):
        return self._conv(g, x.dtype, "gemm", "forward", None, bias is not None)

    def conv2d_gemm_backward_data(self, dy, weight, g):
        return self._conv(g, dy.dtype, "gemm", "backward_data", None, False)

    def conv2d_direct_forward(self, x, weight, bias, g):
        return self._conv(g, x.dtype, "direct", "forward", None, bias is not None)

    def conv2d_direct_backward_data(self, dy, weight, g):
        return self._conv(g, dy.dtype, "direct", "backward_data", None, False)

    def conv2d_direct_backward_weight(self, dy, x, g):
        return self._conv(g, x.dtype, "direct", "backward_weight", None, False)

    def conv2d_implicit_gemm_forward(self, x, weight, bias, g):
        return self._conv(g, x.dtype, "implicit_gemm", "forward", None, bias is not None)

    def conv2d_implicit_gemm_backward_data(self, dy, weight, g):
        return self._conv(g, dy.dtype, "implicit_gemm", "backward_data", None, False)

    def conv2d_implicit_gemm_backward_weight(self, dy, x, g):
        return self._conv(g, x.dtype, "implicit_gemm", "backward_weight", None, False)


class MetaKernelBackend(MetaBackend):
    """The kernel targets (emulated, cupy): the optimizers' fused multi-tensor step is a primitive."""

    def multi_tensor_step(self, op: str, rows: list, args: tuple) -> None:
        # One launch updates every row in place; it allocates only its table of addresses.
        self._spike(self.multi_tensor_step_bytes([int(row.param.size) for row in rows]), f"{op}")

    def multi_tensor_step_bytes(self, sizes: list[int]) -> int:
        return backend_class(self.target).multi_tensor_step_bytes(sizes)


def meta_backend(target: str, ledger: Any) -> MetaBackend:
    """The shape-only backend for ``target`` ("numpy", "emulated" or "cupy")."""
    if target not in TARGETS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, TARGETS))}, got {target!r}")
    return (MetaKernelBackend if capabilities_of(target).kernels else MetaBackend)(target, ledger)


__all__ = ["MetaBackend", "MetaKernelBackend", "TARGETS", "meta_backend"]
