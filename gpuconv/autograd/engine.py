"""The backward engine: runs the nodes reachable from the outputs once each, in reverse order of
creation among those whose gradients are complete (dependency counts, no recursion: deep graphs work),
sums the gradients that reach one place with the backend's add kernel, and frees each node's saved
arrays as it passes (unless the graph is retained).

Ownership of gradient arrays: the engine adds into a gradient in place only when it owns it, i.e. its
memory was made by one node's backward for one edge (not the caller's ``gradient``, not memory that a
backward handed to two places, as an add's backward does). A leaf's first gradient is stored without a
copy when owned, else copied: ``.grad`` never aliases another tensor's gradient.
"""

from __future__ import annotations

import heapq
from typing import Any, Sequence

import numpy as np

from .. import flags
from ..backend import get_backend
from ._util import xp_of
from .graph import AccumulateGrad, Node


def _overlap(a: Any, b: Any) -> bool:
    """Whether two gradients may share memory (a bounds check, no exact solve: conservative)."""
    if type(a) is not type(b):
        return False
    return bool(xp_of(a).may_share_memory(a, b))


def _ownership(results: tuple, grads: list, slots: list, owns_results: bool = True) -> list[bool]:
    """Per result of a node's backward: whether the engine may write into it. A result is owned when no
    other result shares its memory; one that shares an incoming gradient's memory (passed through,
    or a view of it) keeps the ownership that one had. Any other result is owned only when the node
    makes new arrays (``owns_results``: a user's Function may return a saved tensor or a parameter)."""
    owned = []
    for i, g in enumerate(results):
        if g is None:
            owned.append(False)
            continue
        if any(j != i and h is not None and _overlap(g, h) for j, h in enumerate(results)):
            owned.append(False)
            continue
        passed = [bool(entry and entry[1]) for inc, entry in zip(grads, slots) if inc is not None and _overlap(g, inc)]
        owned.append(all(passed) if passed else owns_results)
    return owned


def _accumulate(entry: list | None, g: Any, owned: bool) -> list:
    if entry is None:
        return [g, owned]
    be = get_backend()
    current, current_owned = entry
    if current_owned and current.flags.c_contiguous:
        be.add_(current, be.contiguous(g))
        return entry
    if owned and g.flags.c_contiguous:
        be.add_(g, be.contiguous(current))
        return [g, True]
    total = be.add(be.contiguous(current), be.contiguous(g))
    # NumPy's sum of two 0-d arrays is a scalar: gradients stay arrays.
    return [np.asarray(total) if isinstance(total, np.generic) else total, True]


def _store_leaf_grad(leaf: Any, g: Any, owned: bool) -> None:
    from .tensor import Tensor

    if g.dtype != leaf.data.dtype:
        g = g.astype(leaf.data.dtype)
        owned = True
    if leaf.grad is None:
        if not owned:
            g = g.copy()
        leaf._grad = Tensor._wrap(g)
    else:
        get_backend().add_(leaf.grad.data, g if g.flags.c_contiguous else get_backend().contiguous(g))


def run_backward(roots: Sequence[Any], root_grads: Sequence[Any], retain_graph: bool,
                 inputs: Sequence[Any] | None = None, allow_unused: bool = False) -> list | None:
    """Backpropagates ``root_grads`` (native arrays) from ``roots`` (Tensors).

    With ``inputs`` (``autograd.grad``): returns their gradients (arrays or None) and leaves every
    ``.grad`` untouched; without: accumulates into the leaves' ``.grad`` and returns None.
    """
    start: list[tuple[Node, int, Any, bool]] = []
    for index, (root, grad) in enumerate(zip(roots, root_grads)):
        edge = root._edge()
        if edge is None:
            raise RuntimeError(f"element {index} of tensors does not require grad and does not have a grad_fn")
        start.append((edge[0], edge[1], grad[0], grad[1]))

    capture: dict[tuple[Node, int], int] = {}
    if inputs is not None:
        for position, t in enumerate(inputs):
            edge = t._edge()
            if edge is None:
                raise RuntimeError(f"One of the differentiated Tensors (input {position}) does not require grad")
            capture[edge] = position
    captured: list[Any] = [None] * (0 if inputs is None else len(inputs))

    # Dependency counts over the reachable graph.
    deps: dict[Node, int] = {}
    stack = [node for node, _, _, _ in start]
    seen = set(stack)
    while stack:
        node = stack.pop()
        for edge in node.next_edges:
            if edge is None:
                continue
            nxt = edge[0]
            deps[nxt] = deps.get(nxt, 0) + 1
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)

    buffers: dict[Node, list] = {}
    for node, nr, grad, owned in start:
        slots = buffers.setdefault(node, [None] * node.num_outputs)
        slots[nr] = _accumulate(slots[nr], grad, owned)
    heap: list = []
    queued: set = set()
    for node, _, _, _ in start:
        if deps.get(node, 0) == 0 and node not in queued:
            queued.add(node)
            heapq.heappush(heap, (-node._seq, id(node), node))

    def give(nxt: Node, nr: int, g: Any, owned: bool) -> None:
        if g is not None:
            slots = buffers.get(nxt)
            if slots is None:
                slots = buffers[nxt] = [None] * nxt.num_outputs
            slots[nr] = _accumulate(slots[nr], g, owned)
        deps[nxt] -= 1
        if deps[nxt] == 0:
            heapq.heappush(heap, (-nxt._seq, id(nxt), nxt))

    while heap:
        _, _, node = heapq.heappop(heap)
        slots = buffers.pop(node, None) or [None] * node.num_outputs
        hooks = getattr(node, "_pre_hooks", None)
        if hooks:
            for nr, hook in hooks:
                if slots[nr] is not None:
                    replaced = hook(slots[nr][0])
                    if replaced is not None:
                        slots[nr] = [replaced, False]
        for nr, entry in enumerate(slots):
            if entry is not None and (node, nr) in capture:
                captured[capture[(node, nr)]] = entry[0]
        if isinstance(node, AccumulateGrad):
            if inputs is None and slots[0] is not None:
                leaf = node.variable
                if leaf is not None:
                    _store_leaf_grad(leaf, slots[0][0], slots[0][1])
                    for hook in leaf._post_accumulate_hooks or ():
                        hook(leaf)
            continue
        grads = [None if entry is None else entry[0] for entry in slots]
        if all(g is None for g in grads):
            for edge in node.next_edges:
                if edge is not None:
                    give(edge[0], edge[1], None, False)
            continue
        try:
            results = node.backward(*grads)
        except Exception as exc:
            _name_node(exc, node)
            raise
        if not retain_graph:
            node.release()
        if not isinstance(results, tuple):
            results = (results,)
        # NumPy turns 0-d results into scalars: gradients stay arrays.
        results = tuple(np.asarray(r) if isinstance(r, np.generic) else r for r in results)
        if flags.detect_anomaly:
            _check_finite(node, results)
        if len(results) != len(node.next_edges):
            raise RuntimeError(f"{node.name} returned {len(results)} gradients, expected {len(node.next_edges)}")
        for edge, g, owned in zip(node.next_edges, results, _ownership(results, grads, slots, node.owns_results)):
            if edge is not None:
                give(edge[0], edge[1], g, owned)
    if inputs is not None:
        for position, value in enumerate(captured):
            if value is None and not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {position}) appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the desired behavior.")
        return captured
    return None


def _check_finite(node: Node, results: tuple) -> None:
    """``gpuconv.flags.detect_anomaly``: a node whose gradient holds NaN or infinity is an error naming it."""
    for index, g in enumerate(results):
        if g is None or np.dtype(g.dtype).kind != "f":
            continue
        finite = get_backend().xp.isfinite(g) if not isinstance(g, np.ndarray) else np.isfinite(g)
        if not bool(finite.all()):
            nan = int((g != g).sum())
            raise RuntimeError(f"detect_anomaly: {node.name} returned non-finite values in its gradient {index} "
                               f"({nan} NaN, {int(g.size) - nan - int(finite.sum())} infinite of {int(g.size)} "
                               f"values, shape {tuple(g.shape)})")


def _name_node(exc: Exception, node: Node) -> None:
    """Prefixes the failing node's name to the error message (once), keeping type and traceback."""
    if getattr(exc, "_gpuconv_node", False) or not exc.args or not isinstance(exc.args[0], str):
        return
    exc._gpuconv_node = True
    if node.name not in exc.args[0]:
        exc.args = (f"in the backward of {node.name}: {exc.args[0]}",) + exc.args[1:]
