"""Losses (gpuconv/functional/loss.py), forward and backward, against the float64 references on every
backend: cross_entropy and mse_loss; nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits
and smooth_l1_loss over random configurations, backward against finite differences of the reference;
the modules (saved bytes, state dict keys); PyTorch where installed."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from tests import reference as ref
from tests.helpers import assert_close, finite_difference_check

CE_SHAPES = [(4, 5), (1, 3), (3, 4, 2), (2, 3, 2, 2), (6,)]


def _ce_case(rng, shape, dtype, weighted, ignore):
    logits = (rng.standard_normal(shape) * 2).astype(dtype)
    classes = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, tshape).astype(np.int64)
    if ignore and target.size > 1:
        target.reshape(-1)[rng.integers(target.size)] = ignore
    weight = rng.uniform(0.2, 2.0, classes).astype(dtype) if weighted else None
    return logits, target, weight


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,ignore_index,smoothing", [(False, -100, 0.0), (True, -100, 0.0),
                                                             (False, -100, 0.25), (True, 1, 0.1)])
def test_cross_entropy(backend, dtype, rng, shape, reduction, weighted, ignore_index, smoothing):
    logits, target, weight = _ce_case(rng, shape, dtype, weighted, ignore_index if ignore_index >= 0 else 0)
    if ignore_index < 0:
        pass
    elif len(shape) == 1:
        target[...] = (ignore_index + 1) % shape[0]      # one sample: keep it counted
    g = gpuconv.asarray
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    gw = None if weight is None else g(weight)
    loss = F.cross_entropy(g(logits), g(target), gw, **kwargs)
    expected = ref.cross_entropy(logits, target, weight, **kwargs)
    assert loss.dtype == dtype and loss.shape == expected.shape
    assert_close(loss, expected)
    dloss = rng.standard_normal(expected.shape).astype(dtype) if reduction == "none" else float(rng.uniform(0.5, 2))
    dlogits = F.cross_entropy_backward(g(dloss) if reduction == "none" else dloss, g(logits), g(target), gw, **kwargs)
    assert dlogits.dtype == dtype
    assert_close(dlogits, ref.cross_entropy_backward(dloss, logits, target, weight, **kwargs))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_all_ignored(backend, smoothing):
    # PyTorch: the mean over no targets is NaN, and the gradient is zero.
    logits, target = gpuconv.asarray(np.ones((2, 3))), gpuconv.asarray(np.array([-100, -100]))
    loss = F.cross_entropy(logits, target, label_smoothing=smoothing)
    assert np.isnan(gpuconv.to_numpy(loss))
    grad = F.cross_entropy_backward(1.0, logits, target, label_smoothing=smoothing)
    np.testing.assert_array_equal(gpuconv.to_numpy(grad), np.zeros((2, 3)))


def test_cross_entropy_huge_logits_are_stable(backend, dtype):
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 1.0]], dtype=dtype)
    target = np.array([0, 2])
    with np.errstate(over="raise", invalid="raise"):
        loss = F.cross_entropy(gpuconv.asarray(logits), gpuconv.asarray(target))
    assert_close(loss, ref.cross_entropy(logits, target))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.3)])
def test_cross_entropy_finite_differences(backend, rng, reduction, weighted, smoothing):
    logits, target, weight = _ce_case(rng, (3, 4, 2), np.float64, weighted, 0)
    probe = rng.standard_normal(target.shape) if reduction == "none" else np.array(1.7)
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    gw = None if weight is None else gpuconv.asarray(weight)

    def f(logits):
        loss = F.cross_entropy(gpuconv.asarray(logits), gpuconv.asarray(target), gw, **kwargs)
        return float(np.sum(gpuconv.to_numpy(loss) * probe))

    grad = F.cross_entropy_backward(gpuconv.asarray(probe), gpuconv.asarray(logits), gpuconv.asarray(target), gw,
                                    **kwargs)
    finite_difference_check(f, {"logits": logits}, {"logits": gpuconv.to_numpy(grad)}, rng=rng)


def test_cross_entropy_bad_inputs(backend):
    g = gpuconv.asarray
    logits = g(np.ones((2, 3)))
    with pytest.raises(ValueError, match="target values must be in \\[0, 2\\].*got 3"):
        F.cross_entropy(logits, g(np.array([0, 3])))
    with pytest.raises(ValueError, match="target values.*got -1"):
        F.cross_entropy_backward(1.0, logits, g(np.array([-1, 0])))
    with pytest.raises(TypeError, match="target must hold integer"):
        F.cross_entropy(logits, g(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="target must have shape"):
        F.cross_entropy(logits, g(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="weight"):
        F.cross_entropy(logits, g(np.array([0, 1])), g(np.ones(4)))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, g(np.array([0, 1])), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(logits, g(np.array([0, 1])), label_smoothing=1.5)
    with pytest.raises(ValueError, match="dloss"):
        F.cross_entropy_backward(g(np.ones(3)), logits, g(np.array([0, 1])), reduction="none")
    with pytest.raises(ValueError, match="logits"):
        F.cross_entropy(g(np.array(1.0)), g(np.array(0)))


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(backend, dtype, rng, shape, reduction):
    a, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    g = gpuconv.asarray
    loss = F.mse_loss(g(a), g(b), reduction)
    expected = ref.mse_loss(a, b, reduction)
    assert loss.dtype == dtype
    assert_close(loss, expected)
    dloss = rng.standard_normal(shape).astype(dtype) if reduction == "none" else np.array(1.3, dtype=dtype)
    assert_close(F.mse_loss_backward(g(dloss), g(a), g(b), reduction), ref.mse_loss_backward(dloss, a, b, reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_finite_differences(backend, rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    probe = rng.standard_normal((3, 4)) if reduction == "none" else np.array(0.7)

    def f(a):
        return float(np.sum(gpuconv.to_numpy(F.mse_loss(gpuconv.asarray(a), gpuconv.asarray(b), reduction)) * probe))

    grad = F.mse_loss_backward(gpuconv.asarray(probe), gpuconv.asarray(a), gpuconv.asarray(b), reduction)
    finite_difference_check(f, {"a": a}, {"a": gpuconv.to_numpy(grad)}, rng=rng)


def test_mse_loss_bad_inputs(backend):
    g = gpuconv.asarray
    with pytest.raises(ValueError, match="target must have the shape"):
        F.mse_loss(g(np.ones((2, 3))), g(np.ones((3, 2))))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(g(np.ones(2)), g(np.ones(2)), reduction="max")
    with pytest.raises(ValueError, match="dloss"):
        F.mse_loss_backward(g(np.ones(2)), g(np.ones(2)), g(np.ones(2)), reduction="mean")


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    logits, target, weight = _ce_case(rng, (4, 5, 3), np.float64, True, 2)
    with gpuconv.backend("numpy"):
        for reduction in ("mean", "sum", "none"):
            kwargs = dict(ignore_index=2, reduction=reduction, label_smoothing=0.2)
            t_logits = torch.tensor(logits, requires_grad=True)
            t_loss = torch.nn.functional.cross_entropy(t_logits, torch.tensor(target), torch.tensor(weight), **kwargs)
            probe = rng.standard_normal(t_loss.shape)
            t_loss.backward(torch.tensor(probe))
            np.testing.assert_allclose(F.cross_entropy(logits, target, weight, **kwargs), t_loss.detach().numpy(),
                                       rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(F.cross_entropy_backward(probe, logits, target, weight, **kwargs),
                                       t_logits.grad.numpy(), rtol=1e-12, atol=1e-14)
        x = rng.standard_normal((3, 4, 5))
        w, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
        np.testing.assert_allclose(F.layer_norm(x, (4, 5), w, b),
                                   torch.nn.functional.layer_norm(torch.tensor(x), (4, 5), torch.tensor(w),
                                                                  torch.tensor(b)).numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(F.log_softmax(x, 1), torch.log_softmax(torch.tensor(x), 1).numpy(), rtol=1e-12)


def test_elementwise_ops_against_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rng.standard_normal((4, 6)) * 3
    w, b = rng.standard_normal((5, 6)), rng.standard_normal(5)
    t_x = torch.tensor(x)
    with gpuconv.backend("numpy"):
        pairs = [
            (F.relu(x), tf.relu(t_x)), (F.leaky_relu(x, 0.2), tf.leaky_relu(t_x, 0.2)),
            (F.sigmoid(x), torch.sigmoid(t_x)), (F.tanh(x), torch.tanh(t_x)), (F.softmax(x, 0), torch.softmax(t_x, 0)),
            (F.linear(x, w, b), tf.linear(t_x, torch.tensor(w), torch.tensor(b))),
            (F.mse_loss(x, x[::-1].copy()), tf.mse_loss(t_x, torch.tensor(x[::-1].copy()))),
        ]
        for ours, theirs in pairs:
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-13, atol=1e-15)
        # Dropout: same keep probability semantics and inverted scaling as PyTorch (masks differ: other RNG).
        y = F.dropout(np.ones((100, 100), dtype=np.float32), 0.25, generator=np.random.default_rng(0))
        assert set(np.unique(y)) == set(np.unique(tf.dropout(torch.ones(100, 100), 0.25).numpy()))


# ---- nll_loss, binary_cross_entropy (on probabilities and on logits), smooth_l1_loss --------------------------

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


def test_nll_bce_smooth_l1_against_torch(rng):
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
