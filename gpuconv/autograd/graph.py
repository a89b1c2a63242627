"""The recorded graph: nodes, their edges, and what they save for backward.

A node is the backward of one op. Its ``next_edges`` hold, per input of the op, ``(node, output_nr)``
of where that input's gradient goes, or None when the input needs no gradient. A leaf tensor that
requires grad is reached through its :class:`AccumulateGrad` node, which adds into ``.grad``.

Saved arrays are kept as ``(array, version counter, version at save)``: the node never holds the
Tensor objects themselves, so an output saved by its own op (ReLU saves its result) makes no
reference cycle, and freeing ``node._saved`` after backward releases the memory at once.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

_sequence = itertools.count()


class Node:
    """One op's backward. Subclasses implement :meth:`backward` (gradients of the outputs in, gradients
    of the inputs out, as native arrays or None)."""

    __slots__ = ("next_edges", "_saved", "_seq", "_freed", "_pre_hooks", "__weakref__")

    #: outputs of the op (multi-output nodes receive None for an output no gradient reached).
    num_outputs = 1

    #: whether an array this backward returns (other than an incoming gradient passed through) is new,
    #: so that the engine may add other contributions into it in place. A user's Function may return a
    #: saved tensor or a parameter: its node says False.
    owns_results = True

    def __init__(self) -> None:
        self._seq = next(_sequence)
        self._saved = None
        self._freed = False
        self._pre_hooks = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def next_functions(self) -> tuple:
        return self.next_edges

    def save(self, *tensors: Any) -> None:
        """Keeps ``tensors`` (Tensors or native arrays; None allowed) for backward, with their versions."""
        self._saved = tuple(_pack(t) for t in tensors)

    def saved(self) -> tuple:
        """The saved arrays, after checking that none was modified in place since it was saved."""
        saved = self._saved
        if saved is None:
            if self._freed:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time (or to use the saved tensors of {self.name} "
                    "after they were freed): the first backward freed them. Specify retain_graph=True in the first "
                    "backward() or autograd.grad() call if you need to backward through the graph again.")
            return ()
        return tuple(_unpack(entry, self) for entry in saved)

    def release(self) -> None:
        """Frees what was saved (after this node's backward, unless the graph is retained)."""
        if self._saved is not None:
            self._saved = None
            self._freed = True

    def backward(self, *grads: Any) -> tuple:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _pack(t: Any) -> Any:
    if t is None:
        return None
    version = getattr(t, "_version", None)
    if version is None:  # a native array (or a constant): nothing can change its version
        return (t, None, 0)
    return (t.data, version, version[0])


def _unpack(entry: Any, node: Node) -> Any:
    if entry is None:
        return None
    array, counter, expected = entry
    if counter is not None and counter[0] != expected:
        raise RuntimeError(
            f"one of the variables needed for gradient computation has been modified by an inplace operation: "
            f"a tensor of shape {tuple(array.shape)} saved by {node.name} (a tensor needed for the gradient of "
            f"{node.name} was modified in place: version {counter[0]}, expected {expected}). Use an out-of-place "
            "op (e.g. out = out + x instead of out += x) where the tensor is still needed.")
    return array


class AccumulateGrad(Node):
    """The sink of a leaf tensor that requires grad: adds the incoming gradient into ``tensor.grad``.

    Holds the leaf weakly (the leaf holds this node), so a leaf is freed with its last user reference.
    """

    __slots__ = ("_leaf",)

    def __init__(self, leaf: Any) -> None:
        super().__init__()
        self._leaf = weakref.ref(leaf)
        self.next_edges = ()

    @property
    def variable(self) -> Any:
        return self._leaf()

    def backward(self, *grads: Any) -> tuple:  # the engine accumulates leaves itself
        raise AssertionError("AccumulateGrad is applied by the engine")
