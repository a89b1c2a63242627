"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..backend.optimizer_records import SgdStepArgs, TensorRow

from .optimizer import Optimizer, check_range, fused_state


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

    def _multi_update(self, be: Any, params: list[Any], group: dict[str, Any]) -> None:
        lr, momentum, dampening = float(group["lr"]), float(group["momentum"]), float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        rows = []
        for p in params:
            state = self.state.setdefault(p, {})
            buf, has_buffer = None, 0
            if momentum != 0:
                has_buffer = int(state.get("momentum_buffer") is not None)
                buf = fused_state(be, state, "momentum_buffer", p.data, zero=False)  # first step: buf = g
            rows.append(TensorRow(p.data, p.grad.data, state0=buf, flags=has_buffer))
        t = params[0].data.dtype.type
        be.multi_tensor_step("sgd_step", rows, SgdStepArgs(
            neg_lr=t(-lr), momentum=t(momentum), one_minus_dampening=t(1 - dampening), weight_decay=t(weight_decay),
            use_momentum=np.int32(momentum != 0), use_weight_decay=np.int32(weight_decay != 0),
            nesterov=np.int32(bool(group["nesterov"])), maximize=np.int32(bool(group["maximize"]))))

