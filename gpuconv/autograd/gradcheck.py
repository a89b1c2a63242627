"""``gradcheck``: the analytical gradients of a function against central finite differences, in float64."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..grad_mode import no_grad
from .functions import grad as autograd_grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` (with ``raise_exception=True``) when a gradient is wrong."""


def _outputs(fn: Callable, inputs: Sequence[Any]) -> list[Tensor]:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o for o in outs if isinstance(o, Tensor) and o.data.dtype.kind == "f"]


def gradcheck(fn: Callable, inputs: Any, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0) -> bool:
    """Checks ``fn``'s gradients with respect to every input that requires grad: for each element of
    each such input, the central difference ``(f(x + eps) - f(x - eps)) / 2 eps`` of every output
    against the row of the Jacobian that backward gives (one backward per output element), elementwise
    within ``atol + rtol * |numerical|``.

    Inputs that require grad must be float64 (float32 differences are too coarse to check against).
    Returns True, or raises :class:`GradcheckError` naming the input, output and worst element (or
    returns False when ``raise_exception`` is False).
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient")
    for i in diff:
        if inputs[i].dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} requires grad but has dtype {inputs[i].dtype}: use float64 inputs "
                             "(finite differences in float32 are not accurate enough to check against)")
    outputs = _outputs(fn, inputs)
    if not outputs:
        raise ValueError("gradcheck: fn returned no floating Tensor output")
    # Analytical Jacobian: one backward per output element.
    analytical = {(i, o): np.zeros((inputs[i].numel(), outputs[o].numel())) for i in diff for o in range(len(outputs))}
    for o, out in enumerate(outputs):
        for k in range(out.numel()):
            outs = _outputs(fn, inputs)
            seed = np.zeros(out.numel())
            seed[k] = 1.0
            seed_array = seed.reshape(out.shape)
            if not isinstance(outs[o].data, np.ndarray):
                import cupy
                seed_array = cupy.asarray(seed_array)
            grads = autograd_grad(outs[o], [inputs[i] for i in diff], grad_outputs=[seed_array.astype(out.dtype)],
                                  allow_unused=True)
            for i, g in zip(diff, grads):
                if g is not None:
                    analytical[(i, o)][:, k] = _host(g.data).reshape(-1)
    # Numerical Jacobian.
    for i in diff:
        x = inputs[i].data
        # NOTE: x.reshape(-1) of a non-contiguous input is a copy: perturb x itself, element by element
        # in C order (the order of the analytical Jacobian's rows).
        for j, position in enumerate(np.ndindex(*x.shape)):
            original = x[position].item()
            with no_grad():
                x[position] = original + eps
                plus = [_host(t.data).reshape(-1).copy() for t in _outputs(fn, inputs)]
                x[position] = original - eps
                minus = [_host(t.data).reshape(-1).copy() for t in _outputs(fn, inputs)]
                x[position] = original
            for o in range(len(outputs)):
                numerical = (plus[o] - minus[o]) / (2 * eps)
                got = analytical[(i, o)][j]
                bad = np.abs(got - numerical) > atol + rtol * np.abs(numerical)
                if bad.any():
                    k = int(np.argmax(np.abs(got - numerical) - rtol * np.abs(numerical)))
                    message = (f"Jacobian mismatch for output {o} with respect to input {i}: at input element {j}, "
                               f"output element {k}: numerical {numerical[k]!r}, analytical {got[k]!r} "
                               f"(atol={atol}, rtol={rtol})")
                    if raise_exception:
                        raise GradcheckError(message)
                    return False
    return True


def _host(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.get()
