"""estimate(): one training or inference step replayed on shapes (see ``_sim``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn
from ..backend import get_backend
from ..backend.cuda_ops.elementwise import multi_tensor_table_bytes
from ..functional.loss import cross_entropy_transient_bytes
from ._sim import Array, Timeline, backward, forward, name_modules, nbytes
from .estimate_args import check_input_size, resolve_optimizer
from .report import MemoryReport

LOSSES = ("cross_entropy", "mse")
STEPS = ("later", "first")
# NumPy reuses a temporary as the output of the next operation from this size on (NPY_MIN_ELIDE_BYTES).
NUMPY_ELIDE_BYTES = 256 * 1024
POOL_BLOCK = 512


def _check(model: Any, input_shape: Any, loss: str, step: str, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a gpuconv.nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list)) or not input_shape or any(
            not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1 for v in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive ints including the batch, e.g. (8, 3, 32, 32), "
                         f"got {input_shape!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}, got {step!r}")
    if dtype is None:
        params = list(model.parameters())
        dtype = params[0].dtype if params else np.float32
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    input_shape = tuple(int(v) for v in input_shape)
    check_input_size(input_shape, dtype)
    return input_shape, dtype


def estimate(model: nn.Module, input_shape: tuple[int, ...], *, optimizer: Any = None, training: bool = True,
             dtype: Any = None, loss: str = "cross_entropy", num_classes: int | None = None, step: str = "later",
             backend: str | None = None, world_size: int = 1, bucket_cap_mb: float = 25) -> MemoryReport:
    """Memory of one step of ``model`` on a batch of ``input_shape``, from shapes alone.

    The training step replayed is what :func:`gpuconv.train.fit` runs per batch:
    ``optimizer.zero_grad(); out = model(x); l = loss(out, y); model.backward(loss.backward(),
    input_grad=False); optimizer.step()``, with ``x`` and ``y`` in memory throughout. Inference is
    ``model(x)`` in eval mode under ``gpuconv.no_grad()``.

    Args:
        model: a Module (not modified: its mode is not changed).
        input_shape: the batch's shape, batch first, e.g. (32, 3, 224, 224).
        optimizer: a ``gpuconv.optim`` optimizer over the model's parameters (one holding another
            model's parameters is a ValueError), or its name, "sgd", "adam", "adamw", "rmsprop" or
            "adagrad", for that optimizer with PyTorch's defaults over all of them (None: no state
            and no step, as when gradients are only computed).
        training: False estimates inference.
        dtype: of the activations (default: the parameters').
        loss: ``"cross_entropy"`` (int64 class targets, one per sample) or ``"mse"`` (targets of the
            output's shape).
        num_classes: unused for the memory (the output shape comes from the model); accepted so that
            a call can say what the targets are.
        step: ``"later"`` (default: the optimizer's state and the last step's gradients exist when the
            step starts) or ``"first"`` (the state is created by this step's ``optimizer.step()``).
        backend: ``"numpy"``, ``"emulated"`` or ``"cupy"`` (default: the current backend); ops
            allocate different temporaries on the CPU and GPU paths.
        world_size: ranks of data-parallel training (``DistributedDataParallel``); above 1, each
            rank also holds the gradient buckets (one flat copy of the trainable gradients, in
            buckets of up to ``bucket_cap_mb``) for the whole run, and a transient buffer for the
            buffers broadcast from rank 0 at each forward: the report's ``communication``.
            ``input_shape`` is then one rank's batch.
        bucket_cap_mb: DistributedDataParallel's bucket size.
    Returns:
        A :class:`MemoryReport`.
    Raises:
        ValueError for an ``input_shape`` no backend can index (a size beyond 2**31 - 1, the
        kernels' 32-bit ints, or more bytes than an array can have), at once.
    """
    input_shape, dtype = _check(model, input_shape, loss, step, dtype)
    optimizer = resolve_optimizer(model, optimizer)
    if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
        raise ValueError(f"bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
    del num_classes
    ddp = (int(world_size), float(bucket_cap_mb)) if world_size > 1 and training else None
    backend = backend or get_backend().name
    if backend not in ("numpy", "emulated", "cupy"):
        raise ValueError(f"backend must be 'numpy', 'emulated' or 'cupy', got {backend!r}")
    report = _replay(model, input_shape, dtype, backend, optimizer, training, loss, step, rounding=1, ddp=ddp)
    if backend == "cupy":
        report.pool_peak = _replay(model, input_shape, dtype, backend, optimizer, training, loss, step,
                                   rounding=POOL_BLOCK, ddp=ddp).peak
    return report


def _replay(model, input_shape, dtype, backend, optimizer, training, loss, step, rounding: int,
            ddp: tuple[int, float] | None = None) -> MemoryReport:
    t = Timeline(dtype=dtype, backend=backend, training=bool(training))
    if rounding > 1:
        t.round_to = rounding
    name_modules(t, model)
    params = list(model.parameters())
    params_bytes = sum(p.nbytes for p in params)
    buffers = sum(int(b.nbytes) for b in model.buffers())
    trainable = [p for p in params if p.requires_grad] if training else []
    grads_bytes = sum(p.nbytes for p in trainable)
    state_bytes = int(optimizer.expected_state_bytes()) if (optimizer is not None and training) else 0
    lazy = optimizer is not None and getattr(optimizer, "lazy_state", True)
    kind = "inference" if not training else step

    t.phase = "start"
    for p in params:
        t.new(p.shape, p.nbytes)
    for b in model.buffers():
        t.new(tuple(b.shape), int(b.nbytes))
    old_grads = [t.new(p.shape, p.nbytes) for p in trainable] if kind == "later" else []
    if state_bytes and (kind == "later" or not lazy):
        _allocate_state(t, optimizer)
    communication = 0
    if ddp is not None:
        from ..nn.parallel.reducer import plan_buckets
        for bucket in plan_buckets(trainable, int(ddp[1] * 2 ** 20)):
            communication += t.new((len(bucket),), sum(trainable[i].nbytes for i in bucket)).nbytes
    x = t.new(input_shape)
    inputs_bytes = x.nbytes
    if training:
        out_shape = model.output_shape(input_shape)
        target_shape = (input_shape[0],) + tuple(out_shape[2:]) if loss == "cross_entropy" else out_shape
        target_bytes = nbytes(target_shape, np.int64) if loss == "cross_entropy" else nbytes(target_shape, dtype)
        y_target = t.new(target_shape, target_bytes)
        inputs_bytes += target_bytes
        t.phase = "zero_grad"
        t.drop(*old_grads)

    t.phase = "forward"
    if ddp is not None and buffers:
        # The buffers are gathered into one flat array per dtype, broadcast, and copied back.
        t.transient(t.rounded(buffers), "DistributedDataParallel buffer broadcast")
        communication += buffers
    before = t.current
    out = forward(t, model, x)
    activations = t.current - before
    if training:
        t.phase = "loss"
        dlogits = _loss(t, loss, out, y_target)
        t.phase = "backward"
        dx = backward(t, model, dlogits, False)
        t.drop(dx, dlogits)
        if optimizer is not None:
            t.phase = "optimizer"
            _optimizer_step(t, optimizer, allocate_state=(kind == "first" and lazy))
    return MemoryReport(
        model=type(model).__name__, input_shape=input_shape, dtype=dtype.name, backend=backend, step=kind,
        optimizer=type(optimizer).__name__ if optimizer is not None else None, params=params_bytes,
        grads=grads_bytes, optimizer_state=state_bytes, buffers=buffers, inputs=inputs_bytes,
        activations=activations, workspace=t.largest_transient, workspace_at=t.largest_transient_at, peak=t.peak,
        peak_phase=t.peak_phase, rows=t.rows, world_size=1 if ddp is None else ddp[0], communication=communication)


def _loss(t: Timeline, loss: str, out: Array, target: Array) -> Array:
    """The loss forward (its scalar result stays in use: the step's ``l``) and backward; returns dlogits."""
    if loss == "cross_entropy":
        (value,) = t.op("cross_entropy forward", cross_entropy_transient_bytes(out.shape, t.dtype, "forward", t.backend), ())
        (dlogits,) = t.op("cross_entropy backward", cross_entropy_transient_bytes(out.shape, t.dtype, "backward", t.backend),
                          out.shape)
    else:
        # (input - target) and its square, then the mean; backward: 2 * (input - target) * scale.
        elements = out.nbytes
        (value,) = t.op("mse forward", 2 * elements, ())
        (dlogits,) = t.op("mse backward", elements, out.shape)
    return dlogits


def _state_arrays(optimizer: Any) -> list[tuple[nn.Parameter, int]]:
    seen: set[int] = set()
    out = []
    for group in optimizer.param_groups:
        count = optimizer.state_arrays_per_param(group)
        for p in group["params"]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append((p, count, group))
    return out


def _allocate_state(t: Timeline, optimizer: Any) -> None:
    for p, count, _ in _state_arrays(optimizer):
        for _ in range(count):
            t.new(p.shape, p.nbytes)


def _optimizer_step(t: Timeline, optimizer: Any, allocate_state: bool) -> None:
    # A parameter without a gradient is skipped by step.
    stepping = [(p, count, group) for p, count, group in _state_arrays(optimizer) if p.requires_grad]
    if t.backend != "numpy":
        # Kernel backends: the state of a group's parameters is created first, then one multi-tensor
        # launch per group updates them all; it allocates only its address table.
        for group in optimizer.param_groups:
            params = [(p, count) for p, count, g in stepping if g is group]
            if allocate_state:
                for p, count in params:
                    for _ in range(count):
                        t.new(p.shape, p.nbytes)
            table = multi_tensor_table_bytes([int(np.prod(p.shape, dtype=np.int64)) for p, _ in params])
            t.transient(t.rounded(table), f"{type(optimizer).__name__}.step")
        return
    for p, count, group in stepping:
        if allocate_state:
            for _ in range(count):
                t.new(p.shape, p.nbytes)
        elide = t.backend != "cupy" and p.nbytes >= NUMPY_ELIDE_BYTES
        temps = optimizer.step_temporaries(group, elide)
        t.transient(temps * t.rounded(p.nbytes), f"{type(optimizer).__name__}.step")
