"""estimate(): one training or inference step of the real code, run on shapes only.

The model's own forward, the loss, autograd's backward and the optimizer's step run unchanged on the
shape-only backend (:mod:`gpuconv.memory._meta`): the model's parameters, buffers and the optimizer's
state are swapped for meta arrays for the duration of the run (and restored), every array the step
makes is a meta array counted from its creation until Python frees it, and each primitive adds the
temporaries the target backend allocates inside it. Whatever the model is (a zoo model, a user's
``forward`` with ``+=``, ``gc.cat``, ``F.interpolate``, matmul), the estimate follows what autograd
really keeps, and nothing is computed: the cost is the step's Python work, independent of the sizes.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from .. import flags, nn
from ..autograd import graph
from ..autograd.tensor import Tensor
from ..backend import capabilities_of, get_backend, installed
from ..backend.meta_array import Ledger, MetaArray, set_ledger
from ..grad_mode import no_grad, set_grad_enabled
from ._meta import TARGETS, meta_backend
from .estimate_args import check_input_size, resolve_optimizer
from .report import MemoryReport, Row
from .step import train_step

LOSSES = ("cross_entropy", "mse")
STEPS = ("later", "first")


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

    The training step run is what :func:`gpuconv.train.fit` runs per batch
    (:func:`gpuconv.memory.step.train_step`): ``optimizer.zero_grad(); out = model(x);
    l = loss(out, y); l.backward(); optimizer.step()``, with ``x`` and ``y`` in memory throughout.
    Inference is ``model(x)`` in eval mode under ``gpuconv.no_grad()``. Any model runs: its own
    forward is what executes, on arrays that have shapes and no values (a forward that reads values
    back, e.g. Python control flow on data, raises TypeError).

    Args:
        model: a Module (not modified: its modes, parameters, buffers and gradients are restored).
        input_shape: the batch's shape, batch first, e.g. (32, 3, 224, 224).
        optimizer: a ``gpuconv.optim`` optimizer over the model's parameters (one holding another
            model's parameters is a ValueError), or its name, "sgd", "adam", "adamw", "rmsprop" or
            "adagrad", for that optimizer with PyTorch's defaults over all of them (None: no state
            and no step, as when gradients are only computed). Its state is not touched.
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
            buckets of up to ``bucket_cap_mb``) for the whole run: the report's ``communication``.
            ``input_shape`` is then one rank's batch.
        bucket_cap_mb: DistributedDataParallel's bucket size.
    Returns:
        A :class:`MemoryReport`.
    Raises:
        ValueError for an ``input_shape`` no backend can index (a size beyond 2**31 - 1, the
        kernels' 32-bit ints, or more bytes than an array can have), at once.

    NOTE: with ``gpuconv.flags.conv_benchmark`` on, convolutions are estimated with the heuristic's
    algorithms: the autotuner's winners are known only once it has timed them on the device.
    Python objects (Tensors, graph nodes, the emulated launcher's records beyond 6 KiB per
    primitive) are not counted: a few tens of KB per step.
    """
    input_shape, dtype = _check(model, input_shape, loss, step, dtype)
    optimizer = resolve_optimizer(model, optimizer)
    if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
        raise ValueError(f"bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
    del num_classes
    backend = backend or get_backend().name
    if backend not in TARGETS:
        raise ValueError(f"backend must be 'numpy', 'emulated' or 'cupy', got {backend!r}")
    run = _Run(model, input_shape, dtype, backend, optimizer, bool(training), loss, step)
    if world_size > 1 and training:
        run.ddp = (int(world_size), float(bucket_cap_mb))
    return run.report()


class _Run:
    """One estimate: the swap of the model's state for meta arrays, the step, and the report."""

    def __init__(self, model, input_shape, dtype, backend, optimizer, training, loss, step) -> None:
        self.model, self.input_shape, self.dtype, self.backend = model, input_shape, dtype, backend
        self.optimizer, self.training, self.loss, self.step = optimizer, training, loss, step
        self.gpu = capabilities_of(backend).gpu
        self.ledger = Ledger(elide=not self.gpu)
        self.rows: list[Row] = []
        self.node_rows: dict = {}  # graph node -> the row of the layer whose forward made it
        self.param_ids: set[int] = set()
        self.activations = 0
        self._wrapped: list = []  # (object, attribute) of the instance-level wrappers to remove
        self._recording = False  # rows and activations are taken in the measured step only
        self.ddp: tuple[int, float] | None = None  # (world size, bucket MiB) of DistributedDataParallel
        self.communication = 0

    def report(self) -> MemoryReport:
        model, optimizer = self.model, self.optimizer
        params = list(model.parameters())
        kind = "inference" if not self.training else self.step
        previous = set_ledger(self.ledger)
        try:
            with installed(meta_backend(self.backend, self.ledger)), \
                    flags(conv_benchmark=False, detect_anomaly=False), self._meta_state(), self._modes(), \
                    self._instrumented():
                inputs_bytes, grads, state = self._steps(kind)
            for row in self.rows:  # the backward's temporaries count too
                row.transient_bytes = max(row.transient_bytes, self.ledger.spikes.get(row.name, 0))
        finally:
            set_ledger(previous)
        ledger = self.ledger
        return MemoryReport(
            model=type(model).__name__, input_shape=self.input_shape, dtype=self.dtype.name, backend=self.backend,
            step=kind, optimizer=type(optimizer).__name__ if optimizer is not None else None,
            params=sum(p.nbytes for p in params), grads=grads, optimizer_state=state,
            buffers=sum(int(b.nbytes) for b in model.buffers()), inputs=inputs_bytes, activations=self.activations,
            workspace=ledger.largest_spike, workspace_at=ledger.largest_spike_at, peak=ledger.peak,
            peak_phase=ledger.peak_phase, pool_peak=ledger.pool_peak if self.gpu else None,
            rows=self.rows, world_size=1 if self.ddp is None else self.ddp[0], communication=self.communication)

    def _steps(self, kind: str) -> tuple[int, int, int]:
        """Runs the step (after a warm-up step for "later") and returns (inputs, grads, state) bytes."""
        model, optimizer, ledger = self.model, self.optimizer, self.ledger
        ledger.phase = "start"
        x = MetaArray.new(self.input_shape, self.dtype)
        if not self.training:
            self._recording = True
            with no_grad():
                out = model(x)
            del out
            return x.nbytes, 0, 0
        target = self._target()
        buckets = self._gradient_buckets()
        criterion = nn.CrossEntropyLoss() if self.loss == "cross_entropy" else nn.MSELoss()
        self._wrap_phase(criterion, "loss", "backward")
        with set_grad_enabled(True):
            if kind == "later":
                self._recording = False
                value = train_step(model, criterion, optimizer, x, target)
                del value
                ledger.reset_peak()
            self._recording = True
            ledger.phase = "zero_grad"
            value = train_step(model, criterion, optimizer, x, target)
        del value
        grads = sum(p.grad.data.nbytes for p in model.parameters() if p.grad is not None)
        state = optimizer.state_bytes() if optimizer is not None else 0
        del buckets
        return x.nbytes + target.nbytes, grads, state

    def _gradient_buckets(self) -> list[MetaArray]:
        """DistributedDataParallel's flat gradient buckets (allocated when it wraps the model, so
        they exist throughout the step), as the reducer plans them; none without ``ddp``."""
        if self.ddp is None:
            return []
        from ..nn.parallel.reducer import plan_buckets
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        buckets = [MetaArray.new((sum(int(np.prod(trainable[i].shape, dtype=np.int64)) for i in indices),),
                                 trainable[indices[0]].dtype)
                   for indices in plan_buckets(trainable, int(self.ddp[1] * 2 ** 20))]
        self.communication = sum(b.nbytes for b in buckets)
        return buckets

    def _target(self) -> MetaArray:
        """The targets, shaped from a forward that is not counted (meta arrays outside the ledger)."""
        previous = set_ledger(None)
        try:
            with no_grad():
                shape = tuple(self.model(MetaArray.new(self.input_shape, self.dtype)).shape)
        finally:
            set_ledger(previous)
        if self.loss == "cross_entropy":  # one class index per sample (and position)
            return MetaArray.new((shape[0],) + shape[2:], np.int64)
        return MetaArray.new(shape, self.dtype)

    # ---- the model's state, swapped for meta arrays ------------------------------------------------------
    @contextlib.contextmanager
    def _meta_state(self) -> Iterator[None]:
        model, optimizer = self.model, self.optimizer
        params = {id(p): p for p in model.parameters()}
        if optimizer is not None:
            params.update((id(p), p) for group in optimizer.param_groups for p in group["params"])
        saved_params = [(p, p.data, p._grad) for p in params.values()]
        saved_buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
        saved_state = optimizer.state if optimizer is not None else None
        try:
            for p, data, _ in saved_params:
                p.data, p._grad = MetaArray.new(data.shape, data.dtype), None
            self.param_ids = {id(p.data) for p, _, _ in saved_params}
            for m, name, b in saved_buffers:
                m._buffers[name] = _meta_copy(b)
            if optimizer is not None:
                optimizer.state = _initial_state(optimizer)
            yield
        finally:
            for p, data, grad in saved_params:
                p.data, p._grad = data, grad
            for m, name, b in saved_buffers:
                m._buffers[name] = b
            if optimizer is not None:
                optimizer.state = saved_state

    @contextlib.contextmanager
    def _modes(self) -> Iterator[None]:
        states = [(m, m.training) for m in self.model.modules()]
        try:
            for m, _ in states:
                object.__setattr__(m, "training", self.training)
            yield
        finally:
            for m, training in states:
                object.__setattr__(m, "training", training)

    # ---- phases and per-layer rows -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _instrumented(self) -> Iterator[None]:
        """Instance-level wrappers (removed on exit) that set the ledger's phase and label and record
        a row per leaf module call."""
        wrapped = self._wrapped
        try:
            self._wrap_phase(self.model, "forward", "loss", root=True)
            for name, module in self.model.named_modules():
                if not any(True for _ in module.children()):
                    self._wrap_leaf(module, name or type(module).__name__)
            if self.optimizer is not None:
                self._wrap_step(self.optimizer)
            yield
        finally:
            for obj, attribute in wrapped:
                obj.__dict__.pop(attribute, None)

    def _wrap_phase(self, module: nn.Module, during: str, after: str, root: bool = False) -> None:
        forward, ledger = module.forward, self.ledger

        def run(*args: Any, **kwargs: Any) -> Any:
            ledger.phase = during
            before = ledger.current
            out = forward(*args, **kwargs)
            if root and self._recording:
                self.activations = ledger.current - before
            if not root and self._recording:
                self._label_backward(out)
            ledger.phase = after
            return out
        object.__setattr__(module, "forward", run)
        self._wrapped.append((module, "forward"))

    def _wrap_step(self, optimizer: Any) -> None:
        step, ledger = optimizer.step, self.ledger

        def run(*args: Any, **kwargs: Any) -> Any:
            ledger.phase, ledger.label = "optimizer", f"{type(optimizer).__name__}.step"
            try:
                return step(*args, **kwargs)
            finally:
                ledger.label = ""
        optimizer.__dict__["step"] = run
        self._wrapped.append((optimizer, "step"))

    def _wrap_leaf(self, module: nn.Module, name: str) -> None:
        forward, ledger = module.forward, self.ledger
        own = sum(p.numel() for p in module._parameters.values() if p is not None)

        def run(*args: Any, **kwargs: Any) -> Any:
            if not self._recording:
                return forward(*args, **kwargs)
            outer, ledger.label = ledger.label, name
            start = next(graph._sequence)
            try:
                out = forward(*args, **kwargs)
            finally:
                ledger.label = outer
            first = out[0] if isinstance(out, (tuple, list)) else out
            row = Row(name, type(module).__name__, tuple(getattr(first, "shape", ())), own, 0,
                      ledger.spikes.get(name, 0), ledger.flops.get(name, 0))
            row.saved_bytes = self._saved_since(out, start, row)
            self.rows.append(row)
            return out
        object.__setattr__(module, "forward", run)
        self._wrapped.append((module, "forward"))

    def _saved_since(self, out: Any, start: int, row: Row) -> int:
        """Bytes saved by the graph nodes made after ``start`` that ``out`` reaches (each array once,
        parameters left out: they exist anyway); those nodes are attributed to ``row``."""
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        stack = [t.grad_fn for t in outputs if isinstance(t, Tensor) and t.grad_fn is not None]
        seen, arrays = set(), {}
        while stack:
            node = stack.pop()
            if id(node) in seen or node._seq <= start:
                continue
            seen.add(id(node))
            self.node_rows[node] = row
            for entry in node._saved or ():
                if entry is not None and isinstance(entry[0], MetaArray) and id(entry[0]) not in self.param_ids:
                    root = entry[0] if entry[0].base is None else entry[0].base
                    arrays[id(root)] = root.nbytes
            stack.extend(edge[0] for edge in node.next_edges if edge is not None)
        return sum(arrays.values())

    def _label_backward(self, loss: Any) -> None:
        """Hooks on every node of the graph behind ``loss``: the ledger's label follows the layer
        whose node runs, so that a backward's temporaries count in its layer's row."""
        ledger = self.ledger
        stack = [loss.grad_fn] if isinstance(loss, Tensor) and loss.grad_fn is not None else []
        seen = set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            row = self.node_rows.get(node)

            def hook(g: Any, name: str = row.name if row is not None else "") -> None:
                ledger.label = name
            if node._pre_hooks is None:
                node._pre_hooks = []
            node._pre_hooks.append((0, hook))
            stack.extend(edge[0] for edge in node.next_edges if edge is not None)


def _initial_state(optimizer: Any) -> dict:
    """The optimizer's state as its constructor makes it, on the (swapped) meta parameters: empty for
    the optimizers that create it in their first step; for the others (Adagrad's accumulators) a new
    optimizer of the class over the same groups makes it. A "later" step gets the rest from its
    warm-up step."""
    if optimizer.lazy_state:
        return {}
    try:
        return type(optimizer)([dict(group) for group in optimizer.param_groups]).state
    except TypeError:  # a constructor that takes more than param groups: copy the state it has
        return {p: {k: _meta_copy(v) for k, v in s.items()} for p, s in optimizer.state.items()}


def _meta_copy(value: Any) -> Any:
    """A meta array standing for ``value`` (an array: same shape and dtype, small values kept), or
    ``value`` itself (numbers, step counts)."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.generic):
        host = value if isinstance(value, np.ndarray) else None
        keep = host is not None and host.size <= 64
        return MetaArray.new(tuple(value.shape), value.dtype, host.copy() if keep else None)
    return value


def output_shape(model: nn.Module, input_shape: tuple[int, ...], dtype: Any = None, backend: str | None = None) \
        -> tuple[int, ...]:
    """The shape of ``model``'s output for an input of ``input_shape``, from a shape-only forward in the
    model's current mode (nothing computed, nothing counted, the model unchanged)."""
    input_shape, dtype = _check(model, input_shape, "cross_entropy", "later", dtype)
    run = _Run(model, input_shape, dtype, backend or "numpy", None, model.training, "cross_entropy", "later")
    previous = set_ledger(None)
    try:
        with installed(meta_backend(run.backend, run.ledger)), flags(conv_benchmark=False, detect_anomaly=False), \
                run._meta_state(), no_grad():
            return tuple(model(MetaArray.new(input_shape, dtype)).shape)
    finally:
        set_ledger(previous)
