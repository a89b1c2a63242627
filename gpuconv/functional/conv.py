"""2-D convolution, forward and backward, with a choice of algorithm per direction.

``conv2d`` and ``conv2d_backward`` follow PyTorch's semantics (NCHW input, weight
``(C_out, C_in/groups, KH, KW)``, int or pair arguments, padding ``"same"``/``"valid"``, groups).

Algorithms (``algo=``: one name for the three directions, or a mapping with any of the keys
``"forward"``, ``"backward_data"``, ``"backward_weight"``; missing keys are ``"auto"``). Each is an
object in the registry of :mod:`gpuconv.functional.conv_algos` (one file per algorithm), which this
module dispatches through; ``conv_algos.register`` adds one. The built-in ones:

- ``"im2col"``: the input windows are copied into a column buffer (N, C*KH*KW, OH*OW) and one
  batched GEMM per chunk writes the output straight into NCHW; the bias is added by one epilogue
  kernel. The buffer is bounded by ``gpuconv.flags.workspace_limit`` (default 256 MiB): the batch
  is processed in chunks of whole images. Chunking does not change what is computed, only how the
  GEMMs are cut: ``y`` and ``dx`` agree to the last bits (BLAS may pick another kernel for
  another GEMM width) and ``dweight`` sums one GEMM per chunk, equal up to the rounding of that
  sum order.
- ``"direct"``: kernels/conv_direct.cu: no column buffer. On the numpy backend, one GEMM per
  kernel tap on a shifted view of the input (gpuconv/backend/numpy/conv_direct.py): no column
  buffer either, the low-memory path.
- ``"gemm"``: 1x1 kernel, stride 1, no padding: one batched GEMM over the batch, no columns.
- ``"implicit_gemm"``: kernels/conv_implicit_gemm.cu: each direction is one tiled GEMM whose
  operands are gathered from x, dy and the weights as the tiles are loaded (no column buffer); the
  only workspace is backward weight's split-K partial sums, added in a fixed order (deterministic).
  On the numpy backend it runs the same NumPy GEMM implementation as ``"im2col"``.
- ``"auto"``: :func:`choose_algo` per direction (the numpy backend has its own measured rule); with
  ``gpuconv.flags.conv_benchmark`` on, the autotuner's measured winner among the registered
  algorithms that apply (:mod:`gpuconv.functional.conv_tune`).

``gpuconv.flags.allow_tf32`` lets the GEMMs of ``"im2col"`` and ``"gemm"`` use TF32 on the GPU, and
``"implicit_gemm"`` run its tensor-core (WMMA) kernels on float32 (compute capability 8.0 and newer;
an older GPU runs the FP32 kernels, with one warning). The emulated backend emulates both.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import flags
from ..backend import get_backend
from . import conv_algos, conv_tune
from ._args import check_array, same_dtype
from ._memory import check_request, nbytes
from .conv_algo import ALGOS, DIRECTIONS, candidates, check_algo_spec, check_applies, check_direction, heuristic
from .conv_algo import workspace_bytes as _workspace_bytes
from .conv_geometry import ConvGeometry, conv_geometry
from ._dispatch import recorded

DEFAULT_WORKSPACE_LIMIT = flags.DEFAULT_WORKSPACE_LIMIT


def set_workspace_limit(limit_bytes: int) -> None:
    """Alias of ``gpuconv.flags.workspace_limit = limit_bytes`` (the batch is chunked to fit).

    A single image's columns are never split, so one image larger than the limit is processed alone.
    """
    flags.workspace_limit = limit_bytes


def get_workspace_limit() -> int:
    """Alias of ``gpuconv.flags.workspace_limit`` (bytes, default 256 MiB)."""
    return flags.workspace_limit


def choose_algo(x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, *, direction: str = "forward",
                dtype: Any = None) -> str:
    """The algorithm ``algo="auto"`` runs in ``direction`` for these shapes (``dtype`` default float32).

    With ``gpuconv.flags.conv_benchmark`` on and a tuned winner cached for the key (current device,
    dtype, shapes, arguments, direction, TF32 setting), that winner; otherwise the current backend's
    measured rule: the numpy backend's own (``NumpyDirectConvOps.conv_heuristic``), else
    :func:`gpuconv.functional.conv_algo.heuristic`.
    """
    g = conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups)
    check_direction(direction)
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if flags.conv_benchmark:
        winner = conv_tune.cached(g, direction, dtype)
        if winner is not None and winner in candidates(g, direction):  # else an algorithm since unregistered
            return winner
    return _heuristic(g, direction)


def _heuristic(g: ConvGeometry, direction: str) -> str:
    """The current backend's own rule where it has one (numpy), else the GPU's measured heuristic."""
    return get_backend().conv_heuristic(g, direction) or heuristic(g, direction)


def conv2d_workspace_bytes(x_shape, weight_shape, dtype, stride=1, padding=0, dilation=1, groups=1,
                           algo: Any = "auto", *, direction: str | None = None) -> int:
    """Bytes of transient workspace the chosen algorithm allocates inside the op, for ``direction``
    (``None``: the largest of the three directions a training step runs, one after the other).

    Exact on the cupy and emulated backends: the peak of the extra allocations made inside the op
    (column buffers, transposed copies of dy and of the weights, a chunk's dweight before it is
    added, the direct backward-weight's partial sums), not counting the inputs and the outputs, a
    contiguous copy of a non-contiguous input, CuPy's arrays of matrix pointers for a broadcast
    batched GEMM (24 bytes per matrix) or the operand copies the emulated backend makes to emulate
    TF32. On the numpy backend it is an upper bound (it cuts the batch finer to stay in cache).
    """
    g = conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups)
    if direction is not None:
        check_direction(direction)
    spec = check_algo_spec(algo)
    names = {d: (choose_algo(x_shape, weight_shape, stride, padding, dilation, groups, direction=d, dtype=dtype)
                 if spec[d] == "auto" else check_applies(spec[d], g, d)) for d in DIRECTIONS}
    return _workspace_bytes(g, names, dtype, direction)


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


def _check_spec(algo: Any, g: ConvGeometry) -> dict[str, str]:
    spec = check_algo_spec(algo)
    for direction, name in spec.items():
        if name != "auto":
            check_applies(name, g, direction)
    return spec


def _pick(spec: dict[str, str], g: ConvGeometry, direction: str, dtype, run: Callable[[str], Any]) -> str:
    """The algorithm to run in ``direction``: the given one, the tuned one, or the heuristic's."""
    if spec[direction] != "auto":
        return spec[direction]
    if flags.conv_benchmark:
        itemsize = np.dtype(dtype).itemsize
        fitting = [a for a in candidates(g, direction)
                   if conv_algos.get(a).workspace(g, direction, itemsize) <= flags.workspace_limit]
        fallback = _heuristic(g, direction)
        winner = conv_tune.tuned(g, direction, dtype, fitting or [fallback], run)
        if winner is not None:
            return winner
        return fallback
    return _heuristic(g, direction)


def conv2d(x: Any, weight: Any, bias: Any = None, stride=1, padding=0, dilation=1, groups: int = 1, *,
           algo: Any = "auto") -> Any:
    """2-D convolution (cross-correlation, as PyTorch).

    Args:
        x: (N, C_in, H, W), float32 or float64.
        weight: (C_out, C_in/groups, KH, KW), same dtype.
        bias: (C_out,) or None.
        stride, dilation: int or pair, positive.
        padding: int or pair (zero padding on both sides), ``"valid"`` (none) or ``"same"`` (output
            size = input size; stride 1 only; an odd total goes one more to the bottom/right).
        groups: divides C_in and C_out; ``groups == C_in`` is depthwise.
        algo: ``"auto"``, a registered algorithm's name (``conv_algos.names()``) or a per-direction
            mapping (see the module docstring); the forward uses its ``"forward"`` entry.
    Returns:
        (N, C_out, OH, OW).
    """
    _check_inputs(x, weight, bias)
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    spec = _check_spec(algo, g)
    be = get_backend()
    xp = be.xp
    x, weight = xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    if bias is not None:
        bias = xp.ascontiguousarray(bias)
    if g.n == 0:
        return be.zeros((0, g.c_out) + g.out_size, x.dtype)

    def run(name: str):
        algorithm = conv_algos.get(name)
        steps = algorithm.plan(g, "forward", x.dtype.itemsize)
        check_request("conv2d", nbytes((g.n, g.c_out) + g.out_size, x.dtype) + steps.workspace,
                      f"the output and {name}'s workspace ({steps.workspace:,} bytes)")
        return algorithm.forward(be, x, weight, bias, g, steps)

    return run(_pick(spec, g, "forward", x.dtype, run))


def conv2d_backward(dy: Any, x: Any, weight: Any, stride=1, padding=0, dilation=1, groups: int = 1, *,
                    algo: Any = "auto", needs=(True, True, True)) -> tuple[Any, Any, Any]:
    """Gradients of :func:`conv2d`.

    Args:
        dy: (N, C_out, OH, OW), the gradient of the output.
        x, weight, stride, padding, dilation, groups: as given to :func:`conv2d`.
        algo: a name or a per-direction mapping; dx uses its ``"backward_data"`` entry, dweight its
            ``"backward_weight"`` entry.
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
    spec = _check_spec(algo, g)
    expected = (g.n, g.c_out) + g.out_size
    if tuple(dy.shape) != expected:
        raise ValueError(f"dy must have the conv2d output shape {expected}, got {tuple(dy.shape)}")
    be = get_backend()
    xp = be.xp
    dy, x, weight = xp.ascontiguousarray(dy), xp.ascontiguousarray(x), xp.ascontiguousarray(weight)
    need_dx, need_dw, need_db = (bool(v) for v in needs)
    if g.n == 0:
        return (be.zeros(x.shape, x.dtype) if need_dx else None, be.zeros(weight.shape, x.dtype) if need_dw else None,
                be.zeros((g.c_out,), x.dtype) if need_db else None)
    itemsize = x.dtype.itemsize

    def run_data(name: str):
        algorithm = conv_algos.get(name)
        steps = algorithm.plan(g, "backward_data", itemsize)
        check_request("conv2d_backward", nbytes(x.shape, x.dtype) + steps.workspace,
                      f"dx and {name}'s backward-data workspace ({steps.workspace:,} bytes)")
        return algorithm.backward_data(be, dy, weight, g, steps)

    def run_weight(name: str):
        algorithm = conv_algos.get(name)
        steps = algorithm.plan(g, "backward_weight", itemsize)
        check_request("conv2d_backward", nbytes(weight.shape, x.dtype) + steps.workspace,
                      f"dweight and {name}'s backward-weight workspace ({steps.workspace:,} bytes)")
        return algorithm.backward_weight(be, dy, x, g, steps)

    dx = run_data(_pick(spec, g, "backward_data", x.dtype, run_data)) if need_dx else None
    dw = run_weight(_pick(spec, g, "backward_weight", x.dtype, run_weight)) if need_dw else None
    db = be.sum_except_channel(dy, axis=1) if need_db else None
    return dx, dw, db


__all__ = ["ALGOS", "DIRECTIONS", "choose_algo", "conv2d", "conv2d_backward", "conv2d_workspace_bytes", "conv_geometry",
           "get_workspace_limit", "set_workspace_limit"]
recorded("conv2d")
