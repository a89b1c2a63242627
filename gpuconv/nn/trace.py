"""The recorded data flow of custom container modules, so that a module with only ``forward`` has a backward.

A module whose class implements neither ``_backward`` nor ``backward`` is *traced*: during a
training-mode forward, every call of a module made directly by its ``forward`` is recorded (the
child, its input array and its output array, by identity), and so is every :func:`add`. Its
backward replays the record in reverse, routing each child's input gradient to whichever array fed
that child, summing the gradients of an array used several times.

An array the record cannot explain (``F.relu(h)``, ``h * 2``, a slice) makes backward raise a
RuntimeError before any gradient is computed: a replay never guesses. The one exception is a sum
``a + b`` of two recorded arrays written with ``+``: it is recognised at backward time when the
array equals ``a + b`` bit for bit, as an array computed by that very addition does.
"""

from __future__ import annotations

import threading
from typing import Any

from .. import functional as F

_frames = threading.local()


class Node:
    """One recorded step: ``module`` (None for an add) mapped ``inputs`` to ``output``; ``state``
    is what the module and those below it kept for backward right after the call (restored before
    its backward, so a child called twice gets each call's own state)."""

    __slots__ = ("module", "inputs", "output", "state")

    def __init__(self, module: Any, inputs: tuple, output: Any, state: list | None):
        self.module, self.inputs, self.output, self.state = module, inputs, output, state


class Trace:
    """What a traced module's training forward kept: its input, its output and the steps between."""

    __slots__ = ("input", "output", "nodes")

    def __init__(self, x: Any):
        self.input, self.output, self.nodes = x, None, []


def _stack() -> list:
    if not hasattr(_frames, "stack"):
        _frames.stack = []
    return _frames.stack


class recording:  # noqa: N801 - used as a context manager
    """Pushes ``trace`` (or None: calls made inside are not recorded) as the current frame."""

    def __init__(self, trace: Trace | None):
        self.trace = trace

    def __enter__(self) -> Trace | None:
        _stack().append(self.trace)
        return self.trace

    def __exit__(self, *exc: Any) -> None:
        _stack().pop()


def current() -> Trace | None:
    """The trace that a module call made now belongs to (None when not recording)."""
    stack = _stack()
    return stack[-1] if stack else None


def record_call(trace: Trace, module: Any, inputs: tuple, y: Any) -> None:
    """Records ``y = module(*inputs)`` with the state it left for backward."""
    state = [(m, m._ctx) for m in module.modules()]
    trace.nodes.append(Node(module, inputs, y, state))


def add(a: Any, b: Any) -> Any:
    """``a + b``, recorded for the backward of the custom module whose forward calls it (the
    residual add of a module with only ``forward``); outside such a forward, just ``a + b``."""
    y = _sum(a, b)
    trace = current()
    if trace is not None:
        trace.nodes.append(Node(None, (a, b), y, None))
    return y


def _sum(a: Any, b: Any) -> Any:
    """a + b: one kernel (:func:`gpuconv.functional.add`) for two float arrays of one shape and
    dtype; anything else (broadcasting, Python numbers) through the array module."""
    same = all(hasattr(v, "shape") and hasattr(v, "dtype") for v in (a, b)) and a.shape == b.shape \
        and a.dtype == b.dtype and a.dtype.kind == "f"
    return F.add(a, b) if same else a + b


def _error(module: Any, what: str) -> RuntimeError:
    name = type(module).__name__
    return RuntimeError(
        f"{name}.backward: cannot replay {name}.forward: {what}. A module without its own backward may "
        "only combine what its child modules return and its input, with gpuconv.nn.add(a, b) (or a + b) for "
        f"sums; implement {name}.backward(dy) for other operations (or wrap them in a module that has one).")


def _resolve(module: Any, array: Any, env: dict, what: str, nodes: list) -> int:
    """The value index of ``array``: a recorded one, or a new add node when it is, bit for bit,
    the sum of two recorded values of its shape."""
    if id(array) in env:
        return env[id(array)][0]
    candidates = [(index, value) for index, value in env.values()
                  if getattr(value, "shape", None) == getattr(array, "shape", ()) and value.dtype == array.dtype]
    for i, (ia, a) in enumerate(candidates):
        for ib, b in candidates[i:]:
            if bool((array == a + b).all()):
                nodes.append(("add", None, (ia, ib)))
                return len(nodes)  # the add's own value index (0 is the input)
    raise _error(module, f"{what} was not returned by a child module, nor a sum of such arrays")


def plan(module: Any, trace: Trace) -> tuple[list, int]:
    """The replay program: (steps, output value). Value 0 is the module input; step k produces
    value k + 1. Raises the clear RuntimeError when some array has no recorded origin."""
    env = {id(trace.input): (0, trace.input)}
    steps: list = []
    for node in trace.nodes:
        if node.module is not None and len(node.inputs) != 1:
            raise _error(module, f"{type(node.module).__name__} was called with {len(node.inputs)} arguments "
                                 "(a replay routes one input gradient per call)")
        what = (f"the input of {type(node.module).__name__}" if node.module is not None else "an operand of add")
        inputs = tuple(_resolve(module, a, env, what, steps) for a in node.inputs)
        steps.append(("call" if node.module is not None else "add", node, inputs))
        # Later uses of this array (by identity) mean this step's value.
        env[id(node.output)] = (len(steps), node.output)
    out = _resolve(module, trace.output, env, "its output", steps)
    return steps, out


def replay_backward(module: Any, trace: Trace, dy: Any, input_grad: bool) -> Any:
    """Runs the recorded children's backwards in reverse order; returns the input gradient."""
    steps, out = plan(module, trace)
    grads: dict[int, Any] = {out: dy}

    def give(value: int, g: Any) -> None:
        grads[value] = g if value not in grads else _sum(grads[value], g)

    for index in range(len(steps) - 1, -1, -1):
        kind, node, inputs = steps[index]
        g = grads.pop(index + 1, None)
        if g is None:
            continue  # this value does not reach the output: no gradient flows through it
        if kind == "add":
            for value in inputs:
                give(value, g)
            continue
        for m, ctx in node.state:
            m._ctx = ctx
        # The input gradient is needed unless it would flow only to the module input that the
        # caller does not want.
        need = input_grad or inputs[0] != 0
        dx = node.module.backward(g, input_grad=need)
        # Released as the replay goes, as a hand-written backward frees what each layer kept.
        node.state = node.inputs = node.output = None
        if need:
            give(inputs[0], dx)
    if not input_grad:
        return None
    if 0 not in grads:
        return trace.input * 0  # the output does not depend on the input
    return grads[0]
