"""Adagrad with learning-rate decay."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..backend import get_array_module
from ..backend.optimizer_records import AdagradStepArgs, TensorRow
from .optimizer import Optimizer, check_range, fused_state


class Adagrad(Optimizer):
    """PyTorch's ``torch.optim.Adagrad``, same update formulas.

    clr = lr / (1 + (t - 1) * lr_decay); s += g^2; p -= clr * g / (sqrt(s) + eps).
    The accumulator s starts at ``initial_accumulator_value`` (state exists from construction).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False):
        check_range("lr", lr)
        check_range("lr_decay", lr_decay)
        check_range("weight_decay", weight_decay)
        check_range("initial_accumulator_value", initial_accumulator_value)
        check_range("eps", eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))
        for group in self.param_groups:
            for p in group["params"]:
                xp = get_array_module(p.data)
                self.state[p] = {"step": 0, "sum": xp.full_like(p.data, float(group["initial_accumulator_value"]))}

    lazy_state = False  # the accumulators are created by the constructor, as in PyTorch

    def state_arrays_per_param(self, group: dict[str, Any]) -> int:
        return 1

    def step_temporaries(self, group: dict[str, Any], elide: bool) -> int:
        # std = sqrt(sum) lives while grad * -clr / std is formed.
        return (2 if elide else 3) + (float(group["weight_decay"]) != 0) + bool(group["maximize"])

    def _update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        if not state:
            state["step"] = 0
            state["sum"] = get_array_module(p.data).full_like(p.data, float(group["initial_accumulator_value"]))
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + p.data * weight_decay
        clr = lr / (1 + (state["step"] - 1) * lr_decay)
        state["sum"] += grad * 1.0 * grad
        std = get_array_module(p.data).sqrt(state["sum"])
        std += eps
        p.data += grad * -clr / std

    def _multi_update(self, be: Any, params: list[Any], group: dict[str, Any]) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        rows = []
        for p in params:
            state = self.state.setdefault(p, {})
            if "sum" not in state:
                state["sum"] = be.xp.full(p.data.shape, float(group["initial_accumulator_value"]), dtype=p.data.dtype)
            state["step"] = state.get("step", 0) + 1
            clr = lr / (1 + (state["step"] - 1) * lr_decay)
            rows.append(TensorRow(p.data, p.grad.data, state0=fused_state(be, state, "sum", p.data), scalar0=-clr))
        t = params[0].data.dtype.type
        be.multi_tensor_step("adagrad_step", rows, AdagradStepArgs(
            eps=t(eps), weight_decay=t(weight_decay), use_weight_decay=np.int32(weight_decay != 0),
            maximize=np.int32(bool(group["maximize"]))))
