"""The entry points of differentiation: ``backward``, ``grad``, and ``Function`` for ops with their
own kernels (PyTorch's ``torch.autograd.Function``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..grad_mode import is_grad_enabled, no_grad
from ._util import xp_of
from .engine import run_backward
from .graph import Node
from .tensor import Tensor

_NO_HIGHER_ORDER = ("create_graph=True: gpuconv's autograd computes first-order gradients only (the backward "
                    "of an op is not itself recorded); higher-order gradients are not supported")


def _root_grads(outputs: Sequence[Tensor], grad_outputs: Sequence[Any] | None) -> list[tuple[Any, bool]]:
    """(array, owned) per output: the given gradients, or ones for one-element outputs."""
    result = []
    for index, out in enumerate(outputs):
        g = None if grad_outputs is None else grad_outputs[index]
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs (output {index} has "
                                   f"shape {out.shape}): pass gradient= (backward) or grad_outputs= (grad)")
            ones = np.ones(out.data.shape, dtype=out.data.dtype)
            if not isinstance(out.data, np.ndarray):  # a host-to-device copy, not a fill kernel
                ones = xp_of(out.data).asarray(ones)
            result.append((ones, True))
            continue
        array = g.data if isinstance(g, Tensor) else g
        if not hasattr(array, "shape"):
            xp = xp_of(out.data)
            array = xp.asarray(array, dtype=out.data.dtype)
        if tuple(array.shape) != out.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[{index}] has a shape of {tuple(array.shape)} and "
                               f"output[{index}] has a shape of {out.shape}.")
        if array.dtype != out.data.dtype:
            array = array.astype(out.data.dtype)
        result.append((array, False))
    return result


def _as_list(x: Any) -> list:
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs: Any = None) -> None:
    """Accumulates into the leaves' ``.grad`` the gradient of ``tensors`` (weighted by ``grad_tensors``).

    Args:
        tensors: a Tensor or a sequence of them.
        grad_tensors: the gradient with respect to each (None: ones, for one-element tensors).
        retain_graph: keep the saved arrays for another backward (default: free them as backward passes).
        inputs: accumulate only into these leaves (default: every leaf of the graph).
    """
    if create_graph:
        raise NotImplementedError(_NO_HIGHER_ORDER)
    outputs = _as_list(tensors)
    grads = None if grad_tensors is None else (_as_list(grad_tensors) if not isinstance(grad_tensors, Tensor)
                                                 else [grad_tensors])
    root = _root_grads(outputs, grads)
    if inputs is None:
        run_backward(outputs, root, bool(retain_graph))
        return
    selected = _as_list(inputs)
    values = run_backward(outputs, root, bool(retain_graph), inputs=selected, allow_unused=True)
    from .engine import _store_leaf_grad
    for t, g in zip(selected, values):
        if g is not None:
            _store_leaf_grad(t, g, False)


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs`` (a tuple of Tensors, None for an unused
    input with ``allow_unused``); ``.grad`` of every tensor is left as it was."""
    if create_graph:
        raise NotImplementedError(_NO_HIGHER_ORDER)
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    grads = None if grad_outputs is None else _as_list(grad_outputs)
    values = run_backward(outs, _root_grads(outs, grads), bool(retain_graph), inputs=ins, allow_unused=allow_unused)
    return tuple(None if v is None else Tensor._wrap(v if v.base is None else v.copy()) for v in values)


class FunctionCtx:
    """The ``ctx`` of a :class:`Function`: what forward leaves for backward."""

    def __init__(self, node: "_FunctionNode | None", needs_input_grad: tuple[bool, ...]):
        self._node = node
        self.needs_input_grad = needs_input_grad
        self._non_differentiable: set[int] = set()
        self._to_save: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        """Keeps tensors (or arrays, or None) for backward; an in-place change of one before backward
        is then an error."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor) and not hasattr(t, "shape"):
                raise TypeError(f"save_for_backward can only save tensors, arrays or None, got {type(t).__name__}")
        self._to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        if self._node is None:
            return tuple(self._to_save)
        arrays = self._node.saved()
        return tuple(None if a is None else (Tensor._wrap(a) if hasattr(a, "shape") else a) for a in arrays)

    def mark_non_differentiable(self, *tensors: Any) -> None:
        """Outputs that never carry a gradient (indices, masks)."""
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors: Any) -> None:
        raise NotImplementedError("in-place custom Functions (ctx.mark_dirty) are not supported: return a new tensor")


class _FunctionNode(Node):
    __slots__ = ("function", "ctx", "num_outputs", "output_meta")

    owns_results = False  # backward may return any tensor (a saved one, a parameter): never added into

    @property
    def name(self) -> str:
        return f"{self.function.__name__}Backward"

    def backward(self, *grads):
        wrapped = []
        for g, (shape, dtype, xp) in zip(grads, self.output_meta):
            wrapped.append(Tensor._wrap(g if g is not None else xp.zeros(shape, dtype)))
        with no_grad():
            result = self.function.backward(self.ctx, *wrapped)
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self.next_edges)
        if len(result) < n:
            raise RuntimeError(f"function {self.name} returned an incorrect number of gradients (expected {n}, "
                               f"got {len(result)})")
        result = result[:n] if all(r is None for r in result[n:]) else result
        if len(result) != n:
            raise RuntimeError(f"function {self.name} returned an incorrect number of gradients (expected {n}, "
                               f"got {len(result)})")
        return tuple(None if r is None else (r.data if isinstance(r, Tensor) else r) for r in result)

    def release(self) -> None:
        super().release()
        if self.ctx is not None:
            self.ctx._to_save = ()


class Function:
    """Base class of an op with its own forward and backward, PyTorch's way::

        class Square(gc.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x            # a Tensor or a native array (e.g. from your kernel on x.data)

            @staticmethod
            def backward(ctx, grad_output):
                (x,) = ctx.saved_tensors
                return 2 * x * grad_output

        y = Square.apply(x)

    ``forward`` runs with recording off and gets Tensors for Tensor arguments (``t.data`` is the array
    for a kernel); ``backward`` gets one gradient per output and returns one per forward argument
    (None where there is none). First-order only.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must implement the static forward(ctx, ...)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a Function subclass must implement the static backward(ctx, ...)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        tensor_args = [a for a in args if isinstance(a, Tensor)]
        recording = is_grad_enabled() and any(t._requires_grad for t in tensor_args)
        needs = tuple(isinstance(a, Tensor) and a._requires_grad and recording for a in args)
        node = _FunctionNode() if recording else None
        ctx = FunctionCtx(node, needs)
        with no_grad():
            raw = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(raw, tuple)
        outputs = (raw,) if single else raw
        results = []
        for out in outputs:
            if isinstance(out, Tensor):
                results.append(out)
            elif hasattr(out, "shape") and hasattr(out, "dtype"):
                results.append(Tensor._wrap(out))
            else:
                results.append(out)
        _share_versions(results, args)
        if node is None:
            return results[0] if single else tuple(results)
        node.function, node.ctx = cls, ctx
        node.num_outputs = len(results)
        node.output_meta = tuple((out.shape, out.dtype, _xp(out.data)) if isinstance(out, Tensor) else ((), None, np)
                                 for out in results)
        # Saved inputs are packed with their versions now, so an in-place change before backward is caught.
        node.save(*ctx._to_save)
        ctx._to_save = ()
        node.next_edges = tuple(a._edge() if isinstance(a, Tensor) else None for a in args)
        final = []
        for nr, out in enumerate(results):
            if not isinstance(out, Tensor) or id(out) in ctx._non_differentiable or out.data.dtype.kind != "f":
                final.append(out)
                continue
            if out.grad_fn is not None or out._requires_grad or any(out is a for a in args):
                shared = out
                out = Tensor._wrap(out.data)  # an input returned as is: a new tensor on the same data
                out._version, out._base = shared._version, (shared if shared._base is None else shared._base)
            out.grad_fn, out._output_nr, out._requires_grad = node, nr, True
            final.append(out)
        return final[0] if single else tuple(final)


def _share_versions(outputs: list, args: tuple) -> None:
    """An output on an input's memory (the input returned as is, or a view of it) shares that input's
    version counter, as the built-in views do: an in-place change through either is then seen, and an
    in-place op on the output of a recorded graph is refused as on any view."""
    from .engine import _overlap

    inputs = [a for a in args if isinstance(a, Tensor)]
    for out in outputs:
        if not isinstance(out, Tensor) or any(out is a for a in inputs):
            continue
        for a in inputs:
            if type(out.data) is type(a.data) and _overlap(out.data, a.data):
                out._version, out._base = a._version, (a if a._base is None else a._base)
                break


def _xp(a: Any):
    return xp_of(a)
