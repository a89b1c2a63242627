"""NLLLoss, BCELoss, BCEWithLogitsLoss, SmoothL1Loss: functional forward against the float64 loops of
tests/reference.py over random configurations on every backend, backward against finite
differences of the reference, the modules (saved bytes, state dict keys), PyTorch where installed."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from tests import reference as ref
from tests.helpers import assert_close, finite_difference_check

REDUCTIONS = ("mean", "sum", "none")


def _check(op, op_backward, reference, x, t, kwargs, ref_kwargs, reduction, dtype, rng, extra=None):
    """Forward vs the reference in ``dtype``; in float64 also backward vs finite differences of the
    reference (so the check does not rely on our forward)."""
    g = gpuconv.asarray
    extra = extra or {}
    args = {k: (None if v is None else g(np.asarray(v, dtype=dtype))) for k, v in extra.items()}
    xt, tt = g(x.astype(dtype)), g(t if t.dtype.kind in "iu" else t.astype(dtype))
    out = op(xt, tt, reduction=reduction, **kwargs, **args)
    expected = reference(x, t, reduction=reduction, **ref_kwargs, **extra)
    assert_close(out, expected, dtype)
    assert out.dtype == dtype and gpuconv.get_backend().is_native(out)
    if dtype != np.float64:
        return
    probe = rng.standard_normal(np.shape(expected))
    dloss = g(probe) if reduction == "none" else float(probe)
    grad = op_backward(dloss, xt, tt, reduction=reduction, **kwargs, **args)
    assert grad.shape == x.shape and grad.dtype == dtype

    def f(x):
        return float(np.sum(reference(x, t, reduction=reduction, **ref_kwargs, **extra) * probe))

    finite_difference_check(f, {"x": x.copy()}, {"x": gpuconv.to_numpy(grad)}, rng=rng, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", range(6))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(backend, dtype, rng, case, reduction):
    shape = [(5, 4), (3, 6, 2), (2, 3, 2, 3), (4,), (1, 1), (6, 3)][case]
    logp = np.log(rng.uniform(0.05, 1.0, shape))
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, target_shape)
    weight = rng.uniform(0.5, 2.0, classes) if case % 2 else None
    ignore = int(target.reshape(-1)[0]) if case in (2, 5) and target.size > 1 else -100
    kwargs = dict(ignore_index=ignore)
    _check(F.nll_loss, F.nll_loss_backward, ref.nll_loss, logp, target, kwargs, kwargs, reduction, dtype, rng,
           extra={"weight": weight})


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(backend, dtype, rng, case, reduction):
    shape = [(4, 3), (2, 3, 2), (7,), (1, 1)][case]
    x = rng.uniform(0.05, 0.95, shape)
    t = rng.uniform(0, 1, shape) if case % 2 else rng.integers(0, 2, shape).astype(np.float64)
    weight = rng.uniform(0.5, 2.0, shape[-1:]) if case in (1, 2) else None
    _check(F.binary_cross_entropy, F.binary_cross_entropy_backward, ref.binary_cross_entropy, x, t, {}, {},
           reduction, dtype, rng, extra={"weight": weight})


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(backend, dtype, rng, case, reduction):
    shape = [(4, 3), (2, 3, 2), (7,), (1, 1)][case]
    x = rng.standard_normal(shape) * 3
    t = rng.uniform(0, 1, shape) if case % 2 else rng.integers(0, 2, shape).astype(np.float64)
    extra = {"weight": rng.uniform(0.5, 2.0, shape) if case in (0, 2) else None,
             "pos_weight": rng.uniform(0.5, 3.0, shape[-1:]) if case in (1, 2) else None}
    _check(F.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits_backward,
           ref.binary_cross_entropy_with_logits, x, t, {}, {}, reduction, dtype, rng, extra=extra)


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0, 2.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_loss(backend, dtype, rng, beta, reduction):
    x = rng.standard_normal((3, 4, 2)) * 2
    t = rng.standard_normal((3, 4, 2))
    kwargs = dict(beta=beta)
    _check(F.smooth_l1_loss, F.smooth_l1_loss_backward, ref.smooth_l1_loss, x, t, kwargs, kwargs, reduction,
           dtype, rng)


def test_bce_clamps_logs_and_extreme_logits_stay_finite():
    with gpuconv.backend("numpy"):
        x = np.array([0.0, 1.0, 0.5])
        t = np.array([1.0, 0.0, 1.0])
        np.testing.assert_allclose(F.binary_cross_entropy(x, t, reduction="none"), [100.0, 100.0, np.log(2)])
        big = np.array([1000.0, -1000.0])
        np.testing.assert_allclose(F.binary_cross_entropy_with_logits(big, np.array([0.0, 1.0]), reduction="none"),
                                   [1000.0, 1000.0])
        np.testing.assert_allclose(F.binary_cross_entropy_with_logits_backward(
            np.ones(2), big, np.array([0.0, 1.0]), reduction="none"), [1.0, -1.0])


def test_bad_inputs(backend):
    g = gpuconv.asarray
    x = g(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\].*with_logits"):
        F.binary_cross_entropy(g(np.full((2, 3), 1.5)), x)
    with pytest.raises(ValueError, match="target must have the shape of input"):
        F.binary_cross_entropy(x, g(np.zeros((3, 2))))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=g(np.ones(2)))
    with pytest.raises(ValueError, match="beta must be non-negative"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\) for input"):
        F.nll_loss(x, g(np.zeros(3, dtype=np.int64)))
    with pytest.raises(ValueError, match="target values must be in"):
        F.nll_loss(x, g(np.array([0, 3])))
    with pytest.raises(ValueError, match="reduction"):
        F.smooth_l1_loss(x, x, reduction="avg")


# ---- modules ---------------------------------------------------------------------------------------------------

def _modules(rng):
    logits = rng.standard_normal((4, 3))
    probs = 1 / (1 + np.exp(-logits))
    labels = rng.integers(0, 3, 4)
    binary = rng.integers(0, 2, (4, 3)).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return [
        (nn.NLLLoss(weight=np.array([1.0, 2.0, 0.5])), logp, labels,
         lambda: ref.nll_loss(logp, labels, np.array([1.0, 2.0, 0.5]))),
        (nn.BCELoss(), probs, binary, lambda: ref.binary_cross_entropy(probs, binary)),
        (nn.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 3.0])), logits, binary,
         lambda: ref.binary_cross_entropy_with_logits(logits, binary, pos_weight=np.array([1.0, 2.0, 3.0]))),
        (nn.SmoothL1Loss(beta=0.5), logits, binary, lambda: ref.smooth_l1_loss(logits, binary, beta=0.5)),
    ]


def test_loss_modules(rng):
    with gpuconv.backend("numpy"):
        for crit, x, t, expected in _modules(rng):
            xt = gpuconv.tensor(x, requires_grad=True)
            loss = crit(xt, t)
            np.testing.assert_allclose(loss.item(), expected(), rtol=1e-12)
            assert crit.output_shape(x.shape) == ()
            loss.backward()
            assert xt.grad.shape == x.shape
            with pytest.raises(RuntimeError, match="retain_graph=True"):
                loss.backward()
        assert list(nn.BCEWithLogitsLoss(pos_weight=np.ones(3)).state_dict()) == ["pos_weight"]
        assert list(nn.NLLLoss(weight=np.ones(3)).state_dict()) == ["weight"]
        assert list(nn.BCELoss().state_dict()) == []
        assert repr(nn.SmoothL1Loss(beta=0.5)) == "SmoothL1Loss(beta=0.5)"
        crit = nn.SmoothL1Loss(reduction="none")
        x = gpuconv.tensor(rng.standard_normal((2, 3)), requires_grad=True)
        loss = crit(x, x.detach() * 0)
        assert loss.shape == (2, 3) == crit.output_shape((2, 3))
        loss.backward(np.ones((2, 3)))
        assert x.grad.shape == (2, 3)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    with gpuconv.backend("numpy"):
        for reduction in REDUCTIONS:
            logits = rng.standard_normal((5, 4, 3)) * 3
            labels = rng.integers(0, 4, (5, 3))
            labels[0, 0] = 2
            weight = rng.uniform(0.5, 2, 4)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            binary = rng.uniform(0, 1, logits.shape)
            probs = 1 / (1 + np.exp(-logits))
            pos_weight = rng.uniform(0.5, 2, 3)
            cases = [
                (lambda x: F.nll_loss(x, labels, weight, 2, reduction),
                 lambda x, d: F.nll_loss_backward(d, x, labels, weight, 2, reduction),
                 lambda x: tf.nll_loss(x, torch.tensor(labels), torch.tensor(weight), ignore_index=2,
                                       reduction=reduction), logp),
                (lambda x: F.binary_cross_entropy(x, binary, reduction=reduction),
                 lambda x, d: F.binary_cross_entropy_backward(d, x, binary, reduction=reduction),
                 lambda x: tf.binary_cross_entropy(x, torch.tensor(binary), reduction=reduction), probs),
                (lambda x: F.binary_cross_entropy_with_logits(x, binary, reduction=reduction, pos_weight=pos_weight),
                 lambda x, d: F.binary_cross_entropy_with_logits_backward(d, x, binary, reduction=reduction,
                                                                          pos_weight=pos_weight),
                 lambda x: tf.binary_cross_entropy_with_logits(x, torch.tensor(binary), reduction=reduction,
                                                               pos_weight=torch.tensor(pos_weight)), logits),
                (lambda x: F.smooth_l1_loss(x, binary, reduction=reduction, beta=0.7),
                 lambda x, d: F.smooth_l1_loss_backward(d, x, binary, reduction=reduction, beta=0.7),
                 lambda x: tf.smooth_l1_loss(x, torch.tensor(binary), reduction=reduction, beta=0.7), logits),
            ]
            for ours, ours_backward, theirs, x in cases:
                t_x = torch.tensor(x, requires_grad=True)
                t_loss = theirs(t_x)
                probe = rng.standard_normal(t_loss.shape)
                t_loss.backward(torch.tensor(probe))
                np.testing.assert_allclose(ours(x), t_loss.detach().numpy(), rtol=1e-12, atol=1e-14)
                d = probe if reduction == "none" else float(probe)
                np.testing.assert_allclose(ours_backward(x, d), t_x.grad.numpy(), rtol=1e-12, atol=1e-14)
