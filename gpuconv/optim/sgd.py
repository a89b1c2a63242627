"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any, Iterable

from .optimizer import Optimizer, check_range


class SGD(Optimizer):
    """PyTorch's ``torch.optim.SGD``, same update formulas.

    g = grad (negated when maximize) + weight_decay * p; with momentum, b = g on the first step,
    else b = momentum * b + (1 - dampening) * g, and g = g + momentum * b (nesterov) or b;
    then p -= lr * g.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        check_range("lr", lr)
        check_range("momentum", momentum)
        check_range("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def state_arrays_per_param(self, group: dict[str, Any]) -> int:
        return 1 if float(group["momentum"]) != 0 else 0

    def step_temporaries(self, group: dict[str, Any], elide: bool) -> int:
        # p.data += grad * -lr (and the momentum update's grad * (1 - dampening), one at a time);
        # weight decay keeps a new grad; nesterov another.
        return 1 + (float(group["weight_decay"]) != 0) + bool(group["nesterov"]) + bool(group["maximize"])

    def _update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, momentum, dampening = float(group["lr"]), float(group["momentum"]), float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + p.data * weight_decay
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += grad * (1 - dampening)
            grad = grad + buf * momentum if group["nesterov"] else buf
        p.data += grad * -lr
