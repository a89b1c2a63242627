"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..backend import get_array_module
from ..backend.optimizer_records import RmspropStepArgs, TensorRow
from .optimizer import Optimizer, check_range, fused_state, lerp_


class RMSprop(Optimizer):
    """PyTorch's ``torch.optim.RMSprop``, same update formulas.

    v = alpha * v + (1 - alpha) * g^2; centered: a = lerp(a, g, 1 - alpha), avg = sqrt(v - a^2) + eps,
    else avg = sqrt(v) + eps; with momentum b = momentum * b + g / avg, p -= lr * b; else p -= lr * g / avg.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        check_range("lr", lr)
        check_range("eps", eps)
        check_range("alpha", alpha)
        check_range("momentum", momentum)
        check_range("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def state_arrays_per_param(self, group: dict[str, Any]) -> int:
        return 1 + (float(group["momentum"]) > 0) + bool(group["centered"])

    def step_temporaries(self, group: dict[str, Any], elide: bool) -> int:
        # avg = sqrt(...) lives while grad * -lr / avg (or buf's grad / avg) is formed.
        return (2 if elide else 3) + (float(group["weight_decay"]) != 0) + bool(group["maximize"])

    def _update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if weight_decay != 0:
            grad = grad + p.data * weight_decay
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += grad * (1 - alpha) * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            lerp_(grad_avg, grad, 1 - alpha)
            avg = xp.sqrt(square_avg + grad_avg * -1.0 * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            p.data += buf * -lr
        else:
            p.data += grad * -lr / avg

    def _multi_update(self, be: Any, params: list[Any], group: dict[str, Any]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        rows = []
        for p in params:
            state = self.state.setdefault(p, {})
            state["step"] = state.get("step", 0) + 1
            square_avg = fused_state(be, state, "square_avg", p.data)
            buf = fused_state(be, state, "momentum_buffer", p.data) if momentum > 0 else None
            grad_avg = fused_state(be, state, "grad_avg", p.data) if group["centered"] else None
            rows.append(TensorRow(p.data, p.grad.data, state0=square_avg, state1=buf, state2=grad_avg))
        t = params[0].data.dtype.type
        w = 1 - alpha
        be.multi_tensor_step("rmsprop_step", rows, RmspropStepArgs(
            neg_lr=t(-lr), alpha=t(alpha), one_minus_alpha=t(1 - alpha), w=t(w), one_minus_w=t(1.0 - w),
            w_small=np.int32(w < 0.5), eps=t(eps), weight_decay=t(weight_decay), momentum=t(momentum),
            use_weight_decay=np.int32(weight_decay != 0), use_momentum=np.int32(momentum > 0),
            centered=np.int32(bool(group["centered"])), maximize=np.int32(bool(group["maximize"]))))
