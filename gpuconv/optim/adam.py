"""Adam and AdamW (decoupled weight decay), with optional AMSGrad."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from ..backend import get_array_module
from ..backend.optimizer_records import AdamStepArgs, TensorRow
from .optimizer import Optimizer, check_range, fused_state, lerp_


class Adam(Optimizer):
    """PyTorch's ``torch.optim.Adam``, same update formulas.

    m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g^2;
    p -= lr / (1 - beta1^t) * m / (sqrt(v_or_max_v) / sqrt(1 - beta2^t) + eps).
    weight_decay adds weight_decay * p to g (L2; AdamW decays p directly instead).
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False):
        check_range("lr", lr)
        check_range("eps", eps)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        check_range("betas[0]", betas[0], 0.0, 1.0, high_open=True)
        check_range("betas[1]", betas[1], 0.0, 1.0, high_open=True)
        check_range("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def state_arrays_per_param(self, group: dict[str, Any]) -> int:
        return 3 if group["amsgrad"] else 2

    def step_temporaries(self, group: dict[str, Any], elide: bool) -> int:
        # denom = sqrt(v) / c lives while exp_avg * -step_size / denom is formed: denom and the two
        # products, or denom and one product when NumPy reuses the first temporary.
        return (2 if elide else 3) + (float(group["weight_decay"]) != 0 and not self._decoupled) \
            + bool(group["maximize"])

    def _update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            xp = get_array_module(p.data)
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = state["step"]
        if weight_decay != 0:
            if self._decoupled:
                p.data *= 1 - lr * weight_decay
            else:
                grad = grad + p.data * weight_decay
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += grad * (1 - beta2) * grad
        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        if group["amsgrad"]:
            xp = get_array_module(p.data)
            xp.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            denom = get_array_module(p.data).sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt
        else:
            denom = get_array_module(p.data).sqrt(exp_avg_sq) / bias_correction2_sqrt
        denom += eps
        p.data += exp_avg * -step_size / denom


    def _multi_update(self, be: Any, params: list[Any], group: dict[str, Any]) -> None:
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        rows = []
        for p in params:
            state = self.state.setdefault(p, {})
            state["step"] = state.get("step", 0) + 1
            step = state["step"]
            names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
            arrays = [fused_state(be, state, name, p.data) for name in names]
            step_size = lr / (1 - beta1 ** step)
            rows.append(TensorRow(p.data, p.grad.data, *arrays, scalar0=-step_size,
                                  scalar1=math.sqrt(1 - beta2 ** step)))
        t = params[0].data.dtype.type
        w1 = 1 - beta1
        be.multi_tensor_step("adam_step", rows, AdamStepArgs(
            w1=t(w1), one_minus_w1=t(1.0 - w1), w1_small=np.int32(w1 < 0.5), beta2=t(beta2),
            one_minus_beta2=t(1 - beta2), eps=t(eps), weight_decay=t(weight_decay),
            decay_factor=t(1 - lr * weight_decay), use_weight_decay=np.int32(weight_decay != 0),
            decoupled=np.int32(self._decoupled), amsgrad=np.int32(bool(group["amsgrad"])),
            maximize=np.int32(bool(group["maximize"]))))

class AdamW(Adam):
    """PyTorch's ``torch.optim.AdamW``: Adam with decoupled weight decay p *= 1 - lr * weight_decay
    applied before the moment update (default weight_decay 1e-2)."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
