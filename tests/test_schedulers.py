"""MultiStepLR, ExponentialLR, LinearLR, OneCycleLR, SequentialLR, ReduceLROnPlateau: the lr sequence
against PyTorch's closed forms (formulas written out here), against torch itself bit for bit where
torch is installed, state dicts, and bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpuconv import optim
from gpuconv.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, OneCycleLR,
                                        ReduceLROnPlateau, SequentialLR, StepLR)


class Param:
    def __init__(self, data):
        self.data = data
        self.grad = None


def _sgd(lr=0.5, **kwargs):
    return optim.SGD([Param(np.ones(1))], lr=lr, **kwargs)


def _lrs(scheduler, steps):
    """lr at epoch 0 (after construction), then after each of ``steps`` steps."""
    out = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr()[0])
    return out


def _linear_factor(start, end, total, epoch):
    return start + (end - start) * min(epoch, total) / total


def _one_cycle(step, total, max_lr, pct, div, final_div, strategy="cos"):
    initial, low = max_lr / div, max_lr / div / final_div
    anneal = ((lambda a, b, t: b + (a - b) * (1 + math.cos(math.pi * t)) / 2) if strategy == "cos"
              else (lambda a, b, t: a + (b - a) * t))
    rise_end = pct * total - 1
    if step <= rise_end:
        return anneal(initial, max_lr, step / rise_end)
    return anneal(max_lr, low, (step - rise_end) / (total - 1 - rise_end))


CLOSED_FORMS = [
    ("multistep", lambda o: MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     lambda e: 0.5 * 0.3 ** sum(m <= e for m in [2, 5, 5, 9])),
    ("exponential", lambda o: ExponentialLR(o, gamma=0.9), lambda e: 0.5 * 0.9 ** e),
    ("linear_warmup", lambda o: LinearLR(o, start_factor=0.1, total_iters=4),
     lambda e: 0.5 * _linear_factor(0.1, 1.0, 4, e)),
    ("linear_decay", lambda o: LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=6),
     lambda e: 0.5 * _linear_factor(1.0, 0.2, 6, e)),
    ("one_cycle_cos", lambda o: OneCycleLR(o, max_lr=2.0, total_steps=12),
     lambda e: _one_cycle(e, 12, 2.0, 0.3, 25.0, 1e4)),
    ("one_cycle_linear", lambda o: OneCycleLR(o, max_lr=1.0, epochs=3, steps_per_epoch=4, pct_start=0.5,
                                              anneal_strategy="linear", div_factor=10.0, final_div_factor=5.0),
     lambda e: _one_cycle(e, 12, 1.0, 0.5, 10.0, 5.0, "linear")),
    ("warmup_then_cosine", lambda o: SequentialLR(o, [LinearLR(o, start_factor=0.25, total_iters=3),
                                                      CosineAnnealingLR(o, T_max=8, eta_min=0.01)], milestones=[3]),
     lambda e: (0.5 * _linear_factor(0.25, 1.0, 3, e) if e < 3
                else 0.01 + (0.5 - 0.01) * (1 + math.cos(math.pi * (e - 3) / 8)) / 2)),
]


@pytest.mark.parametrize("name,make,closed_form", CLOSED_FORMS, ids=[c[0] for c in CLOSED_FORMS])
def test_lr_sequence_matches_the_closed_form(name, make, closed_form):
    steps = 11
    got = _lrs(make(_sgd()), steps)
    np.testing.assert_allclose(got, [closed_form(e) for e in range(steps + 1)], rtol=1e-12, atol=1e-15)


def test_one_cycle_cycles_momentum_and_beta1():
    sgd = _sgd(momentum=0.9)
    sched = OneCycleLR(sgd, max_lr=1.0, total_steps=10, base_momentum=0.8, max_momentum=0.9)
    momenta = [sgd.param_groups[0]["momentum"]]
    for _ in range(9):
        sgd.step()
        sched.step()
        momenta.append(sgd.param_groups[0]["momentum"])
    # Momentum goes down while the lr rises (to step 2 = 0.3 * 10 - 1), then back up.
    assert momenta[0] == pytest.approx(0.9) and momenta[2] == pytest.approx(0.8) and momenta[-1] == pytest.approx(0.9)
    adam = optim.Adam([Param(np.ones(1))], lr=0.1, betas=(0.9, 0.99))
    OneCycleLR(adam, max_lr=0.1, total_steps=5)
    assert adam.param_groups[0]["betas"] == (0.95, 0.99)
    with pytest.raises(ValueError, match="stepped 6 times, but total_steps is 5"):
        sched = OneCycleLR(_sgd(momentum=0.9), max_lr=0.1, total_steps=5)
        for _ in range(6):
            sched.step()


def test_reduce_on_plateau():
    opt = _sgd(lr=1.0)
    sched = ReduceLROnPlateau(opt, patience=2, factor=0.5, cooldown=1, min_lr=0.2)
    metrics = [5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append(sched.get_last_lr()[0])
    # 3 epochs without improvement (> patience 2) halve the lr; the cooldown epoch after a
    # reduction counts no bad epoch; the lr stops at min_lr (0.25 * 0.5 -> 0.2).
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2]
    more = [sched.step(3.0) or sched.get_last_lr()[0] for _ in range(5)]
    assert more == [0.2] * 5
    up = ReduceLROnPlateau(_sgd(lr=1.0), mode="max", patience=0, threshold=0.1, threshold_mode="abs")
    for m in (0.5, 0.55, 0.7):            # 0.55 is not 0.1 better than 0.5: reduce
        up.step(m)
    assert up.get_last_lr() == [0.1]
    with pytest.raises(TypeError, match="metrics must be a number"):
        up.step("loss")
    with pytest.raises(TypeError):
        up.step()


def test_sequential_state_dict_round_trip():
    def make(opt):
        return SequentialLR(opt, [ExponentialLR(opt, 0.5), StepLR(opt, 2, 0.1)], milestones=[3])

    opt = _sgd()
    sched = make(opt)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert isinstance(state["_schedulers"], list) and "optimizer" not in state
    opt2 = _sgd()
    sched2 = make(opt2)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(4):
        sched.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


def test_bad_arguments():
    opt = _sgd()
    with pytest.raises(ValueError, match="start_factor must be in"):
        LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="end_factor"):
        LinearLR(opt, end_factor=1.5)
    with pytest.raises(TypeError, match="milestones must be ints"):
        MultiStepLR(opt, [1.5])
    with pytest.raises(ValueError, match="total_steps, or epochs and steps_per_epoch"):
        OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="momentum or betas"):
        OneCycleLR(optim.Adagrad([Param(np.ones(1))]), max_lr=1.0, total_steps=3)
    with pytest.raises(ValueError, match="max_lr must have one value per parameter group"):
        OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=3)
    with pytest.raises(ValueError, match="one milestone fewer"):
        SequentialLR(opt, [ExponentialLR(opt, 0.5), ExponentialLR(opt, 0.5)], milestones=[])
    with pytest.raises(ValueError, match="another optimizer"):
        SequentialLR(opt, [ExponentialLR(_sgd(), 0.5)], milestones=[])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        SequentialLR(opt, [ReduceLROnPlateau(opt)], milestones=[])
    with pytest.raises(ValueError, match="factor must be < 1.0"):
        ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        ReduceLROnPlateau(opt, mode="up")


# ---- against torch (only where torch is installed) ---------------------------------------------------------------

def _torch_cases(torch):
    ts = torch.optim.lr_scheduler
    return [
        (lambda o: MultiStepLR(o, [2, 5, 5, 9], 0.3), lambda o: ts.MultiStepLR(o, [2, 5, 5, 9], 0.3), {}),
        (lambda o: ExponentialLR(o, 0.9), lambda o: ts.ExponentialLR(o, 0.9), {}),
        (lambda o: LinearLR(o, 0.1, 0.9, 4), lambda o: ts.LinearLR(o, 0.1, 0.9, 4), {}),
        (lambda o: OneCycleLR(o, 2.0, total_steps=25, three_phase=True),
         lambda o: ts.OneCycleLR(o, 2.0, total_steps=25, three_phase=True), {"momentum": 0.9}),
        (lambda o: OneCycleLR(o, [0.3], epochs=5, steps_per_epoch=5, anneal_strategy="linear", pct_start=0.4),
         lambda o: ts.OneCycleLR(o, [0.3], epochs=5, steps_per_epoch=5, anneal_strategy="linear", pct_start=0.4),
         {"momentum": 0.5}),
        (lambda o: SequentialLR(o, [LinearLR(o, 0.2, total_iters=3), ExponentialLR(o, 0.8),
                                    CosineAnnealingLR(o, 6, 0.01)], [3, 10]),
         lambda o: ts.SequentialLR(o, [ts.LinearLR(o, 0.2, total_iters=3), ts.ExponentialLR(o, 0.8),
                                       ts.CosineAnnealingLR(o, 6, 0.01)], [3, 10]), {}),
    ]


def test_against_torch():
    torch = pytest.importorskip("torch")
    import warnings

    for make, t_make, kwargs in _torch_cases(torch):
        opt = _sgd(lr=0.5, **kwargs)
        t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sched, t_sched = make(opt), t_make(t_opt)
            assert sched.get_last_lr() == t_sched.get_last_lr()
            for _ in range(24):
                opt.step()
                t_opt.step()
                sched.step()
                t_sched.step()
                assert sched.get_last_lr() == t_sched.get_last_lr()        # bit for bit
                assert opt.param_groups[0].get("momentum") == t_opt.param_groups[0].get("momentum")


def test_reduce_on_plateau_against_torch(rng):
    torch = pytest.importorskip("torch")
    metrics = list(np.round(rng.uniform(0, 1, 40), 1))
    for kwargs in ({}, dict(mode="max", factor=0.5, patience=1, cooldown=2, threshold=0.05, min_lr=0.01),
                   dict(patience=0, threshold_mode="abs", threshold=0.1, eps=0.3)):
        opt = _sgd(lr=0.5)
        t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
        sched, t_sched = ReduceLROnPlateau(opt, **kwargs), torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kwargs)
        for m in metrics:
            sched.step(m)
            t_sched.step(m)
            assert sched.get_last_lr() == t_sched.get_last_lr()
