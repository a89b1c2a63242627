"""Optimizers and LR schedulers against hand-written float64 references (PyTorch's documented
algorithms), state_dict round trips, and (when torch is installed) torch.optim itself."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim
from gpuconv.optim.lr_scheduler import CosineAnnealingLR, StepLR


# The optimizers' parameters are Tensors with ``.data`` and ``.grad``.
Param = nn.Parameter


SHAPES = [(3, 4), (5,), (2, 1, 3)]


def _grads(rng, steps):
    """A different gradient for each step and parameter (fresh random data, varying scale)."""
    return [[rng.standard_normal(s) * rng.uniform(0.1, 3.0) for s in SHAPES] for _ in range(steps)]


def _run(opt_class, kwargs, init, grads, dtype, skip_second_at=None):
    params = [Param(gpuconv.asarray(x.astype(dtype))) for x in init]
    opt = opt_class(params, **kwargs)
    for t, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads, strict=True)):
            p.grad = None if (i == 1 and t == skip_second_at) else gpuconv.asarray(g.astype(dtype))
        opt.step()
    return [gpuconv.to_numpy(p.data) for p in params], opt, params


# ---- float64 references: the algorithms as PyTorch documents them -------------------------------------------

def ref_sgd(p, grads, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    p, b = p.copy(), None
    for t, g in enumerate(grads, 1):
        g = (-g if maximize else g) + weight_decay * p
        if momentum:
            b = g.copy() if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def ref_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
             decoupled=False):
    p = p.copy()
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - betas[0] ** t)
        v_hat = (vmax if amsgrad else v) / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                maximize=False):
    p = p.copy()
    v, a, b = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            denom = np.sqrt(v - a * a) + eps
        else:
            denom = np.sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / denom
            p = p - lr * b
        else:
            p = p - lr * g / denom
    return p


def ref_adagrad(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                maximize=False):
    p, s = p.copy(), np.full_like(p, initial_accumulator_value)
    for t, g in enumerate(grads, 1):
        g = (-g if maximize else g) + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
    return p


CASES = [
    (optim.SGD, dict(lr=0.1), ref_sgd),
    (optim.SGD, dict(lr=0.05, momentum=0.9), ref_sgd),
    (optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), ref_sgd),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02, maximize=True), ref_sgd),
    (optim.Adam, dict(), ref_adam),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), ref_adam),
    (optim.Adam, dict(lr=0.02, amsgrad=True, maximize=True), ref_adam),
    (optim.AdamW, dict(lr=0.01), ref_adam),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True), ref_adam),
    (optim.RMSprop, dict(), ref_rmsprop),
    (optim.RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=0.01, momentum=0.5), ref_rmsprop),
    (optim.RMSprop, dict(lr=0.005, centered=True, momentum=0.9, maximize=True), ref_rmsprop),
    (optim.Adagrad, dict(), ref_adagrad),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.3, eps=1e-6),
     ref_adagrad),
]
IDS = [f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)]


def _ref_kwargs(opt_class, kwargs):
    kwargs = dict(kwargs)
    if opt_class is optim.AdamW:
        kwargs.setdefault("weight_decay", 1e-2)
        kwargs["decoupled"] = True
    return kwargs


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optimizer_matches_reference(backend, dtype, rng, case):
    opt_class, kwargs, reference = case
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = _grads(rng, 7)
    got, opt, _ = _run(opt_class, kwargs, init, grads, dtype)
    tol = dict(rtol=1e-11, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for i, x0 in enumerate(init):
        expected = reference(x0, [g[i] for g in grads], **_ref_kwargs(opt_class, kwargs))
        assert got[i].dtype == dtype
        np.testing.assert_allclose(got[i], expected, **tol)
        assert not np.allclose(got[i], x0)               # the parameters really moved


@pytest.mark.parametrize("case", CASES[1::2], ids=IDS[1::2])
def test_skipped_gradients_and_groups(backend, rng, case):
    opt_class, kwargs, reference = case
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = _grads(rng, 4)
    # A parameter whose grad is None in a step is left alone and its state does not advance.
    got, _, _ = _run(opt_class, kwargs, init, grads, np.float64, skip_second_at=1)
    expected = reference(init[1], [g[1] for t, g in enumerate(grads) if t != 1], **_ref_kwargs(opt_class, kwargs))
    np.testing.assert_allclose(got[1], expected, rtol=1e-11, atol=1e-13)
    # Per-group options override the defaults.
    params = [Param(gpuconv.asarray(x.copy())) for x in init]
    opt = opt_class([{"params": params[:1], "lr": 0.0}, {"params": params[1:]}], **kwargs)
    assert opt.param_groups[0]["lr"] == 0.0 and opt.param_groups[1]["lr"] == opt.defaults["lr"]
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = gpuconv.asarray(g)
        opt.step()
    if opt_class is not optim.AdamW:                     # AdamW decays by lr * weight_decay: 0 here too
        np.testing.assert_array_equal(gpuconv.to_numpy(params[0].data), init[0])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_round_trip_resumes_identically(backend, rng, case):
    opt_class, kwargs, _ = case
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = _grads(rng, 6)
    params = [Param(gpuconv.asarray(x)) for x in init]
    opt = opt_class(params, **kwargs)

    def step(opt, params, step_grads):
        for p, g in zip(params, step_grads, strict=True):
            p.grad = gpuconv.asarray(g.astype(np.float32))
        opt.step()

    for step_grads in grads[:3]:
        step(opt, params, step_grads)
    saved = copy.deepcopy({"state": {k: {n: (gpuconv.to_numpy(v) if hasattr(v, "shape") else v)
                                         for n, v in s.items()} for k, s in opt.state_dict()["state"].items()},
                           "param_groups": opt.state_dict()["param_groups"]})
    clones = [Param(gpuconv.asarray(gpuconv.to_numpy(p.data).copy())) for p in params]
    resumed = opt_class(clones, lr=123.0)                 # options come from the state dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for step_grads in grads[3:]:
        step(opt, params, step_grads)
        step(resumed, clones, step_grads)
    for p, q in zip(params, clones, strict=True):
        np.testing.assert_array_equal(gpuconv.to_numpy(p.data), gpuconv.to_numpy(q.data))


def test_state_dict_layout_and_errors():
    params = [Param(np.ones(3)), Param(np.ones((2, 2)))]
    opt = optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.full(p.data.shape, 0.5)
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][1]["params"] == [1]
    assert sd["param_groups"][1]["lr"] == 0.5 and set(sd["state"]) == {0, 1}
    np.testing.assert_array_equal(sd["state"][1]["momentum_buffer"], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD(params, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="has 1 parameters"):
        optim.SGD([{"params": params}, {"params": [Param(np.ones(1))]}], lr=0.1).load_state_dict(sd)
    bad = copy.deepcopy(sd)
    bad["state"][0]["momentum_buffer"] = np.ones(4)
    with pytest.raises(ValueError, match="shape"):
        optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=0.1).load_state_dict(bad)


def test_zero_grad():
    params = [Param(np.ones(3)), Param(np.ones(2))]
    opt = optim.SGD(params, lr=0.1)
    params[0].grad = np.ones(3)
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and not grad.any() and params[1].grad is None
    opt.zero_grad()
    assert params[0].grad is None


def test_optimizer_bad_arguments():
    p = [Param(np.ones(2))]
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(p, lr=-0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas\\[1\\]"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        optim.RMSprop(p, eps=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.RMSprop(p, momentum=-0.5)
    with pytest.raises(ValueError, match="lr_decay"):
        optim.Adagrad(p, lr_decay=-1.0)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="float array"):
        optim.SGD([Param(np.ones(2, dtype=np.int64), requires_grad=False)], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": p}, {"params": p}], lr=0.1)
    with pytest.raises(RuntimeError, match=r"assigned grad has data of a different size: grad \(3,\), tensor \(2,\)"):
        p[0].grad = np.ones(3)
    opt = optim.SGD(p, lr=0.1)
    p[0].grad = np.ones(2)
    p[0]._grad = gpuconv.Tensor(np.ones(3))  # past the setter's check: step still refuses it
    with pytest.raises(ValueError, match="gradient shape"):
        opt.step()


def test_step_closure_and_in_place_update():
    p = Param(np.ones(3))
    data = p.data
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    assert opt.step(lambda: 42.0) == 42.0
    assert p.data is data and np.all(p.data < 1)


# ---- LR schedulers --------------------------------------------------------------------------------------------

def test_step_lr():
    opt = optim.SGD([Param(np.ones(1))], lr=0.5)
    sched = StepLR(opt, step_size=3, gamma=0.2)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(lrs, [0.5 * 0.2 ** (e // 3) for e in range(11)], rtol=1e-14)
    assert opt.param_groups[0]["lr"] == lrs[-1] and opt.param_groups[0]["initial_lr"] == 0.5


@pytest.mark.parametrize("t_max,eta_min", [(5, 0.0), (4, 0.01), (1, 0.1)])
def test_cosine_annealing(t_max, eta_min):
    groups = [{"params": [Param(np.ones(1))]}, {"params": [Param(np.ones(1))], "lr": 0.3}]
    opt = optim.SGD(groups, lr=1.0)
    sched = CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
    for epoch in range(1, 3 * t_max + 2):
        opt.step()
        sched.step()
        for base, lr in zip((1.0, 0.3), sched.get_last_lr(), strict=True):
            closed = eta_min + (base - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2
            assert lr == pytest.approx(closed, rel=1e-9, abs=1e-12)


def test_scheduler_state_dict_round_trip():
    opt = optim.SGD([Param(np.ones(1))], lr=1.0)
    sched = CosineAnnealingLR(opt, T_max=7, eta_min=0.05)
    for _ in range(3):
        sched.step()
    state = copy.deepcopy(sched.state_dict())
    assert state["last_epoch"] == 3 and state["T_max"] == 7 and "optimizer" not in state
    opt2 = optim.SGD([Param(np.ones(1))], lr=1.0)
    opt2.load_state_dict(opt.state_dict())
    sched2 = CosineAnnealingLR(opt2, T_max=7, eta_min=0.05, last_epoch=state["last_epoch"])
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(5):
        sched.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


def test_scheduler_bad_arguments():
    opt = optim.SGD([Param(np.ones(1))], lr=1.0)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(TypeError, match="optimizer"):
        StepLR(object(), step_size=2)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(optim.SGD([Param(np.ones(1))], lr=1.0), step_size=2, last_epoch=3)


# ---- against torch.optim (only where torch is installed; never required) -----------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("precision", ["f32", "f64"])
def test_against_torch(rng, case, precision):
    torch = pytest.importorskip("torch")
    opt_class, kwargs, _ = case
    dtype = np.float32 if precision == "f32" else np.float64
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[g.astype(dtype) for g in step] for step in _grads(rng, 8)]
    with gpuconv.backend("numpy"):
        got, _, _ = _run(opt_class, kwargs, init, grads, dtype)
    tensors = [torch.tensor(x.copy(), requires_grad=True) for x in init]
    t_opt = getattr(torch.optim, opt_class.__name__)(tensors, **kwargs, foreach=False)
    for step in grads:
        for t, g in zip(tensors, step, strict=True):
            t.grad = torch.tensor(g)
        t_opt.step()
    tol = dict(rtol=1e-14, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
    for a, t in zip(got, tensors, strict=True):
        np.testing.assert_allclose(a, t.detach().numpy(), **tol)


def test_schedulers_against_torch():
    torch = pytest.importorskip("torch")
    for make, t_make in ((lambda o: StepLR(o, 3, 0.3), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.3)),
                         (lambda o: CosineAnnealingLR(o, 6, 0.01),
                          lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 6, 0.01))):
        opt = optim.SGD([Param(np.ones(1))], lr=0.7)
        t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.7)
        sched, t_sched = make(opt), t_make(t_opt)
        for _ in range(20):
            opt.step()
            t_opt.step()
            sched.step()
            t_sched.step()
            assert sched.get_last_lr() == t_sched.get_last_lr()       # bit for bit


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_multi_tensor_kernels_match_numpy_bit_for_bit(rng, case, dtype, monkeypatch):
    """The emulated backend's one-launch multi-tensor update (several blocks per tensor, a skipped
    gradient, a parameter group added later) gives exactly the NumPy path's bits."""
    from gpuconv.backend.cuda import elementwise

    monkeypatch.setattr(elementwise, "MT_CHUNK", 4)  # several blocks per tensor, a partial last one
    opt_class, kwargs, _ = case
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = _grads(rng, 5)
    results = {}
    launches = []
    for name in ("numpy", "emulated"):
        with gpuconv.backend(name) as be:
            if name == "emulated":
                original = type(be).multi_tensor_step
                monkeypatch.setattr(type(be), "multi_tensor_step",
                                    lambda self, *a: (launches.append(a[0]), original(self, *a))[1])
            results[name] = [p for p in _run(opt_class, kwargs, init, grads, dtype, skip_second_at=2)[0]]
    assert len(launches) == len(grads)  # one launch per step
    for a, b in zip(results["numpy"], results["emulated"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_fused_step_takes_named_records_only():
    """multi_tensor_step reads TensorRow fields and the update's own launch record; a positional
    tuple (which would bind scalars to kernel parameters by position) is refused before launching."""
    from gpuconv.backend.optimizer_records import SgdStepArgs, TensorRow

    with gpuconv.backend("emulated") as be:
        p, g = np.ones(5, np.float32), np.full(5, 2.0, np.float32)
        args = SgdStepArgs(neg_lr=np.float32(-0.5), momentum=np.float32(0), one_minus_dampening=np.float32(1),
                           weight_decay=np.float32(0), use_momentum=np.int32(0), use_weight_decay=np.int32(0),
                           nesterov=np.int32(0), maximize=np.int32(0))
        be.multi_tensor_step("sgd_step", [TensorRow(p, g)], args)
        np.testing.assert_array_equal(p, np.zeros(5, np.float32))
        with pytest.raises(TypeError, match="args must be a SgdStepArgs, got tuple"):
            be.multi_tensor_step("sgd_step", [TensorRow(p, g)], tuple(args))
        with pytest.raises(TypeError, match="rows must be TensorRow records, got tuple"):
            be.multi_tensor_step("sgd_step", [(p, g, None, None, None, 0, 0.0, 0.0)], args)
        np.testing.assert_array_equal(p, np.zeros(5, np.float32))  # nothing launched
